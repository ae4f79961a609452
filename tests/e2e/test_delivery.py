"""Delivery failures (issue 2, Delivery): a mailbox that cannot be written
answers 451 4.3.0 at end of data and loses nothing else.

Tests run as root in CI, so permissions cannot make a write fail; a regular
file where the mailbox folder should be (ENOTDIR) does.
"""
from mx import contains_data, make_message


def test_unwritable_mailbox_is_451_and_nothing_else_is_lost(mx):
    (mx.maildir / "example.test").mkdir(parents=True, exist_ok=True)
    (mx.maildir / "example.test" / "blocked").write_text("a file, not a Maildir\n")
    _, first = make_message(subject="first")
    _, data = make_message(subject="second")
    with mx.connect() as c:
        c.ehlo()
        c.send_message("a@example.test", ["ok@example.test"], first)
        # one good and one broken mailbox: all-or-nothing, 451
        c.expect("MAIL FROM:<a@example.test>", 250)
        c.expect("RCPT TO:<fresh@example.test>", 250)
        c.expect("RCPT TO:<blocked@example.test>", 250)
        c.expect("DATA", 354)
        c.send(data + b".\r\n")
        code, text = c.reply(timeout=20)
        assert code == 451 and text[0].startswith("4.3.0"), (code, text)
        # the session goes on
        c.send_message("a@example.test", ["ok@example.test"], data)
    assert (mx.maildir / "example.test" / "blocked").read_text() == "a file, not a Maildir\n"
    assert mx.new_files("fresh@example.test") == [], "half of a refused message was delivered"
    raws = mx.messages("ok@example.test")
    assert len(raws) == 2 and contains_data(raws[0] if b"first" in raws[0] else raws[1], first)
    assert mx.tmp_files() == [], f"tmp/ leftovers after a failure: {mx.tmp_files()}"
    assert any(e.get("event") in ("reject", "refused", "tempfail", "deliver_fail", "message")
               and "451" in " ".join(e.values()) for e in mx.events()) or \
        "451" in mx.log_text(), "the failed delivery is not in the log"
