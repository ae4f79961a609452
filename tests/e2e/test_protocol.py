"""Acceptance 2: the SMTP dialogue over raw sockets.

Pipelined batches (RFC 2920) whatever the read boundaries, BDAT (RFC 3030),
SIZE (RFC 1870), recipient and relay limits, timeouts, concurrency caps, the
refusals of RFC 5321 with enhanced status codes (RFC 2034/3463), and
commands pipelined after STARTTLS (RFC 3207 section 4.2: must be discarded).
"""
import socket
import time

import pytest

from mx import ROOT, contains_data, dot_stuff, make_message, parse_message, proxy_v1

CAP = "421 4.4.5 Service unavailable, concurrency limit reached."


def enhanced(text):
    """The enhanced status code at the start of a reply's first line."""
    return text[0].split(" ")[0] if text else ""


def assert_reply(got, code, enh_prefix):
    c, text = got
    assert c == code, f"expected {code} {enh_prefix}, got {c} {text}"
    assert enhanced(text).startswith(enh_prefix), \
        f"expected enhanced status {enh_prefix}*, got {c} {text}"


# --------------------------------------------------------------------------
# Pipelining


def test_pipelined_batch_answered_in_order(mx):
    rcpts = ["p1@example.test", "p2@example.test", "p3@example.test"]
    _, data = make_message()
    with mx.connect() as c:
        c.ehlo()
        c.send("MAIL FROM:<a@example.test>\r\n" + "".join(f"RCPT TO:<{r}>\r\n" for r in rcpts)
               + "DATA\r\n")
        codes = [c.reply()[0] for _ in range(5)]
        assert codes == [250, 250, 250, 250, 354], codes
        # End of data, a second whole transaction and QUIT in one write.
        _, data2 = make_message()
        c.send(dot_stuff(data) + b".\r\nMAIL FROM:<b@example.test>\r\nRCPT TO:<p1@example.test>\r\n"
               b"DATA\r\n")
        codes = [c.reply()[0] for _ in range(4)]
        assert codes == [250, 250, 250, 354], codes
        c.send(dot_stuff(data2) + b".\r\nNOOP\r\nQUIT\r\n")
        codes = [c.reply()[0] for _ in range(3)]
        assert codes == [250, 250, 221], codes
        assert c.closed_within(5)
    assert len(mx.wait_messages("p1@example.test", 2)) == 2
    assert len(mx.wait_messages("p2@example.test", 1)) == 1
    assert len(mx.wait_messages("p3@example.test", 1)) == 1
    assert contains_data(mx.messages("p3@example.test")[0], data)


def test_pipelined_batch_one_byte_per_write(mx):
    """Replies in order whatever the read boundaries: every byte its own write."""
    _, data = make_message(body_lines=["short"])
    batch = (b"EHLO bytes.e2e.test\r\nMAIL FROM:<a@example.test>\r\nRCPT TO:<b1@example.test>\r\n"
             b"RCPT TO:<b2@example.test>\r\nDATA\r\n")
    with mx.connect() as c:
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(batch)):
            c.send(batch[i:i + 1])
            if i % 16 == 0:
                time.sleep(0.002)
        code, lines = c.reply()
        assert code == 250 and len(lines) > 1, (code, lines)
        assert [c.reply()[0] for _ in range(4)] == [250, 250, 250, 354]
        tail = dot_stuff(data) + b".\r\nQUIT\r\n"
        for i in range(len(tail)):
            c.send(tail[i:i + 1])
        assert c.reply()[0] == 250
        assert c.reply()[0] == 221
    assert contains_data(mx.wait_messages("b2@example.test", 1)[0], data)


def test_pipelined_errors_do_not_desynchronise(mx):
    with mx.connect() as c:
        c.ehlo()
        c.send("MAIL FROM:<a@example.test>\r\nRCPT TO:<x@nowhere.invalid>\r\n"
               "RCPT TO:<ok@example.test>\r\nFOO\r\nRCPT TO:<>\r\nDATA\r\n")
        got = [c.reply()[0] for _ in range(6)]
        assert got[0] == 250 and got[2] == 250 and got[5] == 354, got
        assert got[1] == 550 and got[3] == 500 and got[4] in (501, 553, 550), got
        c.send(b"Subject: x\r\n\r\nbody\r\n.\r\n")
        assert c.reply()[0] == 250
    assert len(mx.wait_messages("ok@example.test", 1)) == 1
    assert mx.new_files("x@nowhere.invalid") == []


# --------------------------------------------------------------------------
# BDAT


def test_bdat_single_chunk_last(mx):
    _, data = make_message()
    with mx.connect() as c:
        c.ehlo()
        c.expect("MAIL FROM:<a@example.test>", 250)
        c.expect("RCPT TO:<bdat@example.test>", 250)
        c.send(f"BDAT {len(data)} LAST\r\n".encode() + data)
        assert_reply(c.reply(), 250, "2.")
    raw = mx.wait_messages("bdat@example.test", 1)[0]
    assert contains_data(raw, data)
    assert "with ESMTP" in " ".join(parse_message(raw).get_all("Received")[0].split())


def test_bdat_chunks_split_and_bdat0_last(mx):
    """Several chunks, a chunk split over writes, content that looks like an
    end of data (BDAT is length-delimited: no dot handling), then BDAT 0 LAST."""
    _, data = make_message(body_lines=["first", ".", "..dots stay as sent", "\r\n.\r\n inside"])
    parts = [data[:7], data[7:100], data[100:]]
    with mx.connect() as c:
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.ehlo()
        c.expect("MAIL FROM:<a@example.test>", 250)
        c.expect("RCPT TO:<chunks@example.test>", 250)
        for p in parts:
            c.send(f"BDAT {len(p)}\r\n".encode() + p[:3])
            time.sleep(0.05)
            c.send(p[3:len(p) // 2])
            time.sleep(0.05)
            c.send(p[len(p) // 2:])
            assert_reply(c.reply(), 250, "2.")
        c.send(b"BDAT 0 LAST\r\n")
        assert_reply(c.reply(), 250, "2.")
        # A pipelined BDAT transaction: MAIL, RCPT and the chunk in one write.
        c.send(b"MAIL FROM:<a@example.test>\r\nRCPT TO:<chunks@example.test>\r\n"
               + f"BDAT {len(data)} LAST\r\n".encode() + data + b"NOOP\r\n")
        assert [c.reply()[0] for _ in range(4)] == [250, 250, 250, 250]
    raws = mx.wait_messages("chunks@example.test", 2)
    assert len(raws) == 2
    for raw in raws:
        assert contains_data(raw, data), raw[-300:]


def test_bdat_and_data_refused_out_of_sequence(mx):
    with mx.connect() as c:
        c.ehlo()
        assert_reply(c.cmd("DATA"), 503, "5.5.1")
        # BDAT before MAIL: the chunk is read and dropped (RFC 3030 s.2), 503
        c.send(b"BDAT 5 LAST\r\nhello")
        assert_reply(c.reply(), 503, "5.5.1")
        assert_reply(c.cmd("NOOP"), 250, "2.0.0")
        c.expect("MAIL FROM:<a@example.test>", 250)
        assert_reply(c.cmd("DATA"), 503, "5.5.1")  # no valid recipient yet
        c.expect("RCPT TO:<seq@example.test>", 250)
        c.send(b"BDAT 4\r\nabcd")
        assert c.reply()[0] == 250
        # DATA after BDAT in one transaction is a sequence error (RFC 3030 s.3)
        assert_reply(c.cmd("DATA"), 503, "5.5.1")
        # and so are MAIL and RCPT: the Received header (its "for") is written
        assert_reply(c.cmd("RCPT TO:<late@example.test>"), 503, "5.5.1")
        assert_reply(c.cmd("MAIL FROM:<b@example.test>"), 503, "5.5.1")
        c.send(b"BDAT 4 LAST\r\nefgh")
        assert c.reply()[0] == 250
        assert c.cmd("RSET")[0] == 250
        assert c.cmd("NOOP")[0] == 250


# --------------------------------------------------------------------------
# SIZE


def test_size_refused_at_mail_and_at_end_of_data(mx_factory):
    mx = mx_factory(options={"Max_Message_Size": 10000})
    with mx.connect() as c:
        exts, lines = c.ehlo()
        assert "SIZE 10000" in [ln.upper() for ln in lines], lines
        assert_reply(c.cmd("MAIL FROM:<a@example.test> SIZE=20000"), 552, "5.3.4")
        # a declared size under the limit, but real data above it
        c.expect("MAIL FROM:<a@example.test> SIZE=500", 250)
        c.expect("RCPT TO:<big@example.test>", 250)
        c.expect("DATA", 354)
        _, big = make_message(body_lines=["x" * 70] * 200)
        assert len(big) > 10000
        c.send(big + b".\r\n")
        assert_reply(c.reply(), 552, "5.3.4")
        # no SIZE parameter at all, same refusal at the end
        c.expect("MAIL FROM:<a@example.test>", 250)
        c.expect("RCPT TO:<big@example.test>", 250)
        c.expect("DATA", 354)
        c.send(big + b".\r\n")
        assert_reply(c.reply(), 552, "5.3.4")
        # BDAT too
        c.expect("MAIL FROM:<a@example.test>", 250)
        c.expect("RCPT TO:<big@example.test>", 250)
        c.send(f"BDAT {len(big)} LAST\r\n".encode() + big)
        assert_reply(c.reply(), 552, "5.3.4")
        # the session is still fine: a small message goes through
        _, small = make_message()
        c.send_message("a@example.test", ["big@example.test"], small)
    raws = mx.wait_messages("big@example.test", 1)
    assert len(raws) == 1 and contains_data(raws[0], small)
    assert any(e.get("event") in ("reject", "refuse", "refused", "message")
               for e in mx.events()), "a refused message should be logged"


# --------------------------------------------------------------------------
# Mail loops (RFC 5321 section 6.3)


def with_hops(n, subject):
    hops = "".join(f"Received: from hop{i}.example.test by hop{i + 1}.example.test;\r\n"
                   f"\tTue, 24 Nov 2026 10:00:{i % 60:02d} +0000\r\n" for i in range(n))
    return hops.encode() + make_message(subject=subject)[1]


def data_refused(c, data, code, status):
    """One transaction whose data the server must refuse with code/status."""
    c.expect("MAIL FROM:<a@example.test>", 250)
    c.expect("RCPT TO:<loop@example.test>", 250)
    c.expect("DATA", 354)
    c.send(data + b".\r\n")
    assert_reply(c.reply(), code, status)


def test_too_many_received_headers_is_a_loop(mx_factory):
    mx = mx_factory()  # the default, 100: what RFC 5321 asks at least
    with mx.connect() as c:
        c.ehlo()
        c.send_message("a@example.test", ["loop@example.test"], with_hops(100, "100 hops"))
        data_refused(c, with_hops(101, "101 hops"), 554, "5.4.6")
        # BDAT is counted the same way
        c.expect("MAIL FROM:<a@example.test>", 250)
        c.expect("RCPT TO:<loop@example.test>", 250)
        data = with_hops(101, "101 hops, BDAT")
        c.send(f"BDAT {len(data)} LAST\r\n".encode() + data)
        assert_reply(c.reply(), 554, "5.4.6")
    raws = mx.wait_messages("loop@example.test", 1)
    assert len(raws) == 1 and b"Subject: 100 hops" in raws[0]
    rejects = [e for e in mx.events("reject") if e.get("phase") == "data"]
    assert len(rejects) == 2 and all(e.get("code") == "554" for e in rejects), rejects


def test_received_limit_per_listen_and_off(mx_factory):
    mx = mx_factory(options={"Max_Received_Headers": 0}, listen_options={"Max_Received_Headers": 2})
    with mx.connect() as c:  # the Listen says 2
        c.ehlo()
        c.send_message("a@example.test", ["loop@example.test"], with_hops(2, "two"))
        data_refused(c, with_hops(3, "three"), 554, "5.4.6")
    with mx.connect_proxy(proxy_v1("192.0.2.7", "192.0.2.1")) as c:  # global 0: no check
        c.ehlo()
        c.send_message("a@example.test", ["loop@example.test"], with_hops(500, "500"))
    assert len(mx.wait_messages("loop@example.test", 2)) == 2


# --------------------------------------------------------------------------
# Recipients and relaying


def test_too_many_recipients(mx_factory):
    mx = mx_factory(options={"Max_Recipients_Per_Message": 3})
    _, data = make_message()
    with mx.connect() as c:
        c.ehlo()
        c.expect("MAIL FROM:<a@example.test>", 250)
        for i in range(3):
            c.expect(f"RCPT TO:<r{i}@example.test>", 250)
        assert_reply(c.cmd("RCPT TO:<r3@example.test>"), 452, "4.5.3")
        c.expect("DATA", 354)
        c.send(dot_stuff(data) + b".\r\n")
        assert c.reply()[0] == 250
    for i in range(3):
        assert len(mx.wait_messages(f"r{i}@example.test", 1)) == 1
    assert mx.new_files("r3@example.test") == []


def test_relay_refused_for_foreign_domain(mx):
    with mx.connect() as c:
        c.ehlo()
        c.expect("MAIL FROM:<a@example.test>", 250)
        assert_reply(c.cmd("RCPT TO:<victim@other.test>"), 550, "5.7.1")
        # a source route through us must not open a relay either
        assert_reply(c.cmd("RCPT TO:<@mx.e2e.test:victim@other.test>"), 550, "5.7.1")
        # the domain check is case-insensitive and ignores a trailing dot... at least the case
        c.expect("RCPT TO:<ok@Example.Test>", 250)
    with mx.connect(v6=True) as c:
        c.ehlo()
        c.expect("MAIL FROM:<a@example.test>", 250)
        assert_reply(c.cmd("RCPT TO:<victim@other.test>"), 550, "5.7.1")


def test_relay_allowed_from_relay_hosts(mx_factory):
    """From a client in Relay_Hosts a foreign domain is accepted. With
    Delivery = maildir the message then goes to MAILDIR/<domain>/<local>/; the
    behaviour must be documented in docs/CONFIGURATION.md."""
    mx = mx_factory(options={"Relay_Hosts": ["127.0.0.0/8"]})
    _, data = make_message()
    with mx.connect() as c:
        c.ehlo()
        c.send_message("a@example.test", ["far@other.test"], data)
    raws = mx.wait_messages("far@other.test", 1)
    assert len(raws) == 1 and contains_data(raws[0], data), \
        f"relayed mail not in {mx.mailbox('far@other.test')}: {mx.new_files()}"
    # ::1 is not in Relay_Hosts here: refused.
    with mx.connect(v6=True) as c:
        c.ehlo()
        c.expect("MAIL FROM:<a@example.test>", 250)
        assert_reply(c.cmd("RCPT TO:<far@other.test>"), 550, "5.7.1")
    doc = ROOT / "docs" / "CONFIGURATION.md"
    assert doc.exists(), "docs/CONFIGURATION.md is missing"
    assert "relay_hosts" in doc.read_text().lower(), "Relay_Hosts is not documented"


# --------------------------------------------------------------------------
# Timeouts and caps


def test_idle_timeout(mx_factory):
    mx = mx_factory(options={"Idle_Time": 2})
    with mx.connect() as c:
        t0 = time.monotonic()
        c.ehlo()
        code, text = c.reply(timeout=10)
        elapsed = time.monotonic() - t0
        assert code == 421 and enhanced(text) == "4.4.2", (code, text)
        assert 1.5 <= elapsed <= 6, f"idle timeout after {elapsed:.1f}s, configured 2s"
        assert c.closed_within(3), "connection not closed after the idle 421"


def test_listener_sessions_cap(mx_factory):
    mx = mx_factory(listen_options={"Listener_Sessions": 3})
    held = [mx.connect() for _ in range(3)]
    try:
        for c in held:
            assert c.banner[0] == 220
        fourth = mx.connect(banner=False)
        assert fourth.line() == CAP
        assert fourth.closed_within(3), "connection not closed after the cap 421"
        fourth.close()
        ev = mx.wait_event("concurrency_limit")
        assert ev["limit"] == "Listener_Sessions" and ev["listener"] == f"127.0.0.1:{mx.port}", ev
        # the cap is per listener: the IPv6 listener still has room
        with mx.connect(v6=True) as c6:
            assert c6.banner[0] == 220
        # a slot freed is a slot available again (bounded retry: the server
        # must first notice the close)
        held.pop().close()
        deadline = time.monotonic() + 5
        while True:
            c = mx.connect(banner=False)
            first = c.line()
            if first.startswith("220"):
                held.append(c)
                break
            c.close()
            assert time.monotonic() < deadline, "slot never freed after a client left"
            time.sleep(0.1)
    finally:
        for c in held:
            c.close()


def test_service_sessions_cap(mx_factory):
    mx = mx_factory(options={"Service_Sessions": 3})
    held = [mx.connect(), mx.connect(v6=True), mx.connect()]
    try:
        for v6 in (True, False):
            c = mx.connect(v6=v6, banner=False)
            assert c.line() == CAP
            assert c.closed_within(3)
            c.close()
        # the log says so once (not once per refused connection)
        ev = mx.wait_event("concurrency_limit")
        assert ev["limit"] == "Service_Sessions" and ev["refused"] == "1", ev
        assert ev["sessions"] == "3", ev
        assert len(mx.events("concurrency_limit")) == 1
    finally:
        for c in held:
            c.close()


def test_max_receptions_per_connection(mx_factory):
    mx = mx_factory(options={"Max_Receptions_Per_Connection": 2})
    _, data = make_message()
    with mx.connect() as c:
        c.ehlo()
        c.send_message("a@example.test", ["rx@example.test"], data)
        c.send_message("a@example.test", ["rx@example.test"], data)
        code, text = c.cmd("MAIL FROM:<a@example.test>")
        assert code in (421, 452), f"third message on the connection answered {code} {text}"
        assert enhanced(text).startswith("4."), text
    assert len(mx.wait_messages("rx@example.test", 2)) == 2


# --------------------------------------------------------------------------
# Refusals and simple commands


def test_simple_commands(mx):
    with mx.connect() as c:
        c.ehlo()
        assert_reply(c.cmd("NOOP"), 250, "2.0.0")
        assert_reply(c.cmd("RSET"), 250, "2.0.0")
        assert_reply(c.cmd("VRFY postmaster"), 252, "2.")
        code, text = c.cmd("HELP")
        assert code in (211, 214), (code, text)
        assert_reply(c.cmd("QUIT"), 221, "2.0.0")
        assert c.closed_within(3)


def test_refusals(mx):
    with mx.connect() as c:
        c.ehlo()
        assert_reply(c.cmd("FROBNICATE"), 500, "5.5.")
        assert_reply(c.cmd("RCPT TO:<early@example.test>"), 503, "5.5.1")
        assert_reply(c.cmd("MAIL FROM:bogus"), 501, "5.5.")
        assert_reply(c.cmd("MAIL FROM:<unterminated@example.test"), 501, "5.5.")
        assert_reply(c.cmd("MAIL FROM:<a@example.test> SIZE=abc"), 501, "5.5.")
        c.expect("MAIL FROM:<a@example.test>", 250)
        assert_reply(c.cmd("MAIL FROM:<again@example.test>"), 503, "5.5.1")
        assert_reply(c.cmd("RCPT TO:<>"), 501, "5.")
        # a command line over 512 octets (RFC 5321 4.5.3.1.4)
        code, text = c.cmd("NOOP " + "x" * 2000)
        assert code == 500 and enhanced(text) == "5.5.2", (code, text)
        assert_reply(c.cmd("NOOP"), 250, "2.0.0")  # still in sync after the long line
        c.expect("RSET", 250)
        assert_reply(c.cmd("EHLO"), 501, "5.5.")


def test_rset_clears_transaction(mx):
    _, data = make_message()
    with mx.connect() as c:
        c.ehlo()
        c.expect("MAIL FROM:<a@example.test>", 250)
        c.expect("RCPT TO:<gone@example.test>", 250)
        c.expect("RSET", 250)
        assert_reply(c.cmd("DATA"), 503, "5.5.1")
        c.send_message("a@example.test", ["kept@example.test"], data)
    assert len(mx.wait_messages("kept@example.test", 1)) == 1
    assert mx.new_files("gone@example.test") == []


def test_too_many_errors_then_close(mx_factory):
    mx = mx_factory(options={"Max_Errors": 3})
    with mx.connect() as c:
        c.ehlo()
        codes = []
        closed = False
        for i in range(6):
            try:
                codes.append(c.cmd(f"BOGUS{i}")[0])
            except Exception:
                closed = True
                break
            if codes[-1] == 421:
                break
        assert 421 in codes, f"no 421 after {len(codes)} errors: {codes}"
        assert codes.index(421) <= 3, f"421 came too late: {codes}"
        assert all(x == 500 for x in codes[:codes.index(421)]), codes
        assert closed or c.closed_within(3), "connection not closed after 421"


def test_mail_data_without_ehlo_and_8bit_params(mx):
    _, data = make_message()
    with mx.connect() as c:
        code, _ = c.cmd("MAIL FROM:<a@example.test>")
        assert code in (250, 503), code  # HELO first is allowed to be required
        if code == 503:
            c.ehlo()
        c.expect("RSET", 250)
        c.expect("MAIL FROM:<a@example.test> BODY=8BITMIME SMTPUTF8", 250)
        c.expect("RCPT TO:<j\u00f6rg@example.test>", 250)
        c.expect("DATA", 354)
        c.send(data + b".\r\n")
        assert c.reply()[0] == 250
        # SMTPUTF8 address without the SMTPUTF8 parameter is refused (RFC 6531 3.4)
        c.expect("MAIL FROM:<a@example.test>", 250)
        code, text = c.cmd("RCPT TO:<j\u00f6rg@example.test>")
        assert code in (553, 550, 501) and text, (code, text)
        c.expect("RSET", 250)
        # invalid UTF-8 is refused
        c.send(b"MAIL FROM:<\xff\xfe@example.test> SMTPUTF8\r\n")
        code, text = c.reply()
        assert 500 <= code < 600, (code, text)
    assert len(mx.new_files()) == 1


# --------------------------------------------------------------------------
# STARTTLS


def test_a_large_pipelined_batch_over_tls_is_answered_whole(mx):
    """8,000 NOOPs in one write after STARTTLS: ~110 KiB of replies, more
    than the session lets pile up (32 KiB), so parsing stops until the
    client reads. Over TLS it never resumed (the filter's write callback
    does not fire while the socket's buffer below it drains): 1,800 to
    2,700 replies, then silence until Idle_Time (RFC 2920 3.1)."""
    n = 8000
    with mx.connect() as c:
        c.ehlo()
        c.starttls()
        c.ehlo()
        c.send("MAIL FROM:<a@example.test>\r\nRCPT TO:<tls@example.test>\r\n" + "NOOP\r\n" * n)
        codes = [c.reply(timeout=10)[0] for _ in range(n + 2)]
        assert codes == [250] * (n + 2)
        c.expect("RSET", 250)


@pytest.mark.parametrize("pipelined", ["NOOP", "MAIL FROM:<inject@example.test>"])
def test_commands_pipelined_after_starttls_are_discarded(mx, pipelined):
    with mx.connect() as c:
        c.ehlo()
        c.send(f"STARTTLS\r\n{pipelined}\r\n")
        code, text = c.reply()
        assert code == 220, (code, text)
        # nothing for the pipelined command in plain text...
        assert c.nothing_within(0.5), f"answered a command pipelined after STARTTLS: {c.buf!r}"
        assert not c.buf
        c.sock.settimeout(10)
        import ssl
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        c.sock = ctx.wrap_socket(c.sock)
        # ...nor after the handshake
        assert c.nothing_within(1.0), f"answered a pre-TLS command after TLS: {c.buf!r}"
        exts, lines = c.ehlo()
        assert "STARTTLS" not in exts
        # an injected MAIL must not have opened a transaction
        c.expect("MAIL FROM:<a@example.test>", 250)
        c.expect("RCPT TO:<tls@example.test>", 250)
        c.expect("QUIT", 221)
