"""Acceptance 2 (smuggling): end of data is only CRLF.CRLF.

Each variant puts a look-alike end of data (bare LF or bare CR around a dot)
inside the message, followed by a second, pipelined transaction. The server
must never see the second transaction (no second message, no extra replies);
with the default Bare_LF = reject it refuses the message at the real end of
data, and with Bare_LF = "normalize" it delivers exactly one message whose
line ends are all CRLF (or all LF) and which holds the would-be smuggled
commands as plain text. CVE-2023-51764, CVE-2023-51765, CVE-2023-51766.
"""
import pytest

from mx import Closed, make_message

SEPARATORS = {
    "lf.lf": b"\n.\n",
    "lf.crlf": b"\n.\r\n",
    "cr.cr": b"\r.\r",
    "crlf.lf": b"\r\n.\n",
    "crlf.cr": b"\r\n.\r",
    "lf.cr": b"\n.\r",
    "cr.crlf": b"\r.\r\n",
    "cr.lf": b"\r.\n",
    "crlf.crcrlf": b"\r\n.\r\r\n",
    "lfcr.lf": b"\n\r.\n",
}

SMUGGLED = (b"MAIL FROM:<evil@example.test>\r\nRCPT TO:<smuggled@example.test>\r\nDATA\r\n"
            b"From: evil@example.test\r\nSubject: smuggled\r\n\r\nsmuggled body\r\n")


def payload(sep):
    _, head = make_message(subject="legit", body_lines=["legit body"])
    return head.rstrip(b"\r\n") + sep + SMUGGLED + b".\r\n"


def transaction(mx, sep):
    """One transaction with the smuggling attempt; returns the replies seen
    after the 354 up to a NOOP's reply (or the close)."""
    replies = []
    with mx.connect() as c:
        c.ehlo()
        c.send(b"MAIL FROM:<legit@example.test>\r\nRCPT TO:<legit@example.test>\r\nDATA\r\n")
        assert [c.reply()[0] for _ in range(3)] == [250, 250, 354]
        c.send(payload(sep))
        replies.append(c.reply(timeout=10))
        try:
            c.send(b"NOOP\r\n")
            for _ in range(6):
                r = c.reply(timeout=3)
                replies.append(r)
                if r[0] == 250 and r[1] and "2.0.0" in r[1][0] and len(replies) >= 2:
                    break
        except (Closed, OSError):
            pass
        # nothing more may come
        extra = c.nothing_within(0.5)
    return replies, extra


@pytest.mark.parametrize("sep", list(SEPARATORS.values()), ids=list(SEPARATORS))
def test_smuggling_refused_by_default(mx, sep):
    replies, quiet = transaction(mx, sep)
    code, text = replies[0]
    assert 500 <= code < 600, f"message with bare CR/LF accepted: {replies}"
    assert text and text[0][:2] == "5.", f"no enhanced status: {replies}"
    # only the refusal and (if the session goes on) the NOOP's 250
    assert len(replies) <= 2, f"extra replies, the smuggled commands ran: {replies}"
    if len(replies) == 2:
        assert replies[1][0] == 250, replies
    assert quiet, "more replies after NOOP: smuggled commands ran"
    assert mx.new_files() == [], f"something was delivered: {mx.new_files()}"


@pytest.mark.parametrize("sep", list(SEPARATORS.values()), ids=list(SEPARATORS))
def test_smuggling_normalized(mx_factory, sep):
    mx = mx_factory(options={"Bare_LF": "normalize"})
    replies, quiet = transaction(mx, sep)
    assert replies[0][0] == 250, f"normalize mode should accept: {replies}"
    assert [r[0] for r in replies] == [250, 250], f"extra replies: smuggled commands ran: {replies}"
    assert quiet
    assert mx.new_files("smuggled@example.test") == []
    raws = mx.wait_messages("legit@example.test", 1)
    assert len(raws) == 1 and len(mx.new_files()) == 1, mx.new_files()
    raw = raws[0]
    assert b"\r" not in raw.replace(b"\r\n", b""), f"bare CR left in {raw!r}"
    if b"\r\n" in raw:
        assert raw.count(b"\n") == raw.count(b"\r\n"), f"bare LF left in {raw!r}"
    assert b"legit body" in raw
    assert b"MAIL FROM:<evil@example.test>" in raw, "the smuggled text should be plain data"
    assert b"smuggled body" in raw


@pytest.mark.parametrize("sep", [b"\n.\n", b"\r.\r", b"\r\n.\n", b"\n.\r\n"],
                         ids=["lf.lf", "cr.cr", "crlf.lf", "lf.crlf"])
def test_lookalike_end_does_not_end_data(mx, sep):
    """After only the look-alike, the server must still be waiting for data."""
    with mx.connect() as c:
        c.ehlo()
        c.send(b"MAIL FROM:<a@example.test>\r\nRCPT TO:<wait@example.test>\r\nDATA\r\n")
        assert [c.reply()[0] for _ in range(3)] == [250, 250, 354]
        c.send(b"Subject: x\r\n\r\nbody" + sep)
        assert c.nothing_within(1.5), f"server answered after a look-alike end: {c.buf!r}"
        c.send(b"\r\n.\r\n")
        code, _ = c.reply()
        assert 500 <= code < 600, code
    assert mx.new_files() == []


def test_bare_lf_in_body_refused_and_clean_message_accepted(mx):
    _, good = make_message()
    with mx.connect() as c:
        c.ehlo()
        c.send(b"MAIL FROM:<a@example.test>\r\nRCPT TO:<lf@example.test>\r\nDATA\r\n")
        assert [c.reply()[0] for _ in range(3)] == [250, 250, 354]
        c.send(b"Subject: x\r\n\r\none\ntwo\r\n.\r\n")
        code, text = c.reply()
        assert 500 <= code < 600, (code, text)
        try:
            c.send_message("a@example.test", ["lf@example.test"], good)
        except (Closed, OSError):
            # Closing after a bare-LF refusal is allowed (Postfix does);
            # then a new connection must work.
            with mx.connect() as c2:
                c2.ehlo()
                c2.send_message("a@example.test", ["lf@example.test"], good)
    assert len(mx.wait_messages("lf@example.test", 1)) == 1
