"""What a misbehaving peer can do must cost it its session, never the server:
a stalled DATA, a client vanishing mid-message, a TLS handshake of garbage,
junk bytes. After each, the server must still deliver a normal message.
"""
import socket
import time

from mx import make_message


def still_serving(mx, rcpt="after@example.test"):
    _, data = make_message()
    with mx.connect() as c:
        c.ehlo()
        c.send_message("a@example.test", [rcpt], data)
    assert mx.wait_messages(rcpt, 1), "server stopped delivering"


def test_data_time_limits_a_stalled_data(mx_factory):
    mx = mx_factory(options={"Idle_Time": 30, "Data_Time": 2})
    with mx.connect() as c:
        c.ehlo()
        c.send(b"MAIL FROM:<a@example.test>\r\nRCPT TO:<stall@example.test>\r\nDATA\r\n")
        assert [c.reply()[0] for _ in range(3)] == [250, 250, 354]
        c.send(b"Subject: stalled\r\n\r\nhalf a mess")
        t0 = time.monotonic()
        code, text = c.reply(timeout=15)
        elapsed = time.monotonic() - t0
        assert code == 421 and text[0].startswith("4.4.2"), (code, text)
        assert 1.5 <= elapsed <= 8, f"Data_Time = 2 fired after {elapsed:.1f}s"
        assert c.closed_within(3)
    assert mx.new_files() == []
    still_serving(mx)


def test_client_vanishing_mid_data_delivers_nothing(mx):
    for cut in (b"Subject: cut\r\n\r\nbody line\r\n", b"Subject: cut\r\n\r\nbody\r\n.",
                b"Subject: cut\r\n\r\nbody\r\n.\r"):
        c = mx.connect()
        c.ehlo()
        c.send(b"MAIL FROM:<a@example.test>\r\nRCPT TO:<cut@example.test>\r\nDATA\r\n")
        assert [c.reply()[0] for _ in range(3)] == [250, 250, 354]
        c.send(cut)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()  # RST
    time.sleep(0.3)
    assert mx.new_files("cut@example.test") == [], "a message cut short was delivered"
    still_serving(mx)


def test_tls_handshake_garbage(mx):
    with mx.connect() as c:
        c.ehlo()
        assert c.cmd("STARTTLS")[0] == 220
        c.send(b"\x16\x03\x01\x00\x05hello, this is not TLS\r\n" * 3)
        assert c.closed_within(10), "connection left open after a failed handshake"
    with mx.connect() as c:
        c.ehlo()
        assert c.cmd("STARTTLS")[0] == 220
        # and one that hangs up in the middle of the handshake
    still_serving(mx)


def test_binary_junk_and_nul_bytes(mx):
    with mx.connect() as c:
        c.send(b"\x00\x01\x02EHLO \x00x\r\n\xff\xfe\xfd\r\nNOOP\r\n")
        codes = []
        for _ in range(3):
            codes.append(c.reply()[0])
        assert codes[0] >= 500 and codes[1] >= 500 and codes[2] == 250, codes
    # A BDAT whose size cannot be read: 501, and closing is allowed (the
    # chunk boundary is lost, the stream cannot be followed).
    for bad in ("BDAT abc", "BDAT 5 FIRST", "BDAT -1", "BDAT 99999999999999999999999"):
        with mx.connect() as c:
            c.ehlo()
            c.expect("MAIL FROM:<a@example.test>", 250)
            c.expect("RCPT TO:<nul@example.test>", 250)
            code, text = c.cmd(bad)
            assert code == 501 and text[0].startswith("5.5."), (bad, code, text)
    still_serving(mx)


def test_many_short_connections(mx):
    """500 connect/QUIT cycles: no descriptor or session leak (the disconnect
    events balance the connects, and the server still serves)."""
    for _ in range(500):
        with mx.connect() as c:
            assert c.cmd("QUIT")[0] == 221
    for _ in range(100):
        s = socket.create_connection(("127.0.0.1", mx.port), timeout=5)
        s.close()  # before even reading the banner
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if len(mx.events("disconnect")) == len(mx.events("connect")):
            break
        time.sleep(0.05)
    assert len(mx.events("disconnect")) == len(mx.events("connect")), \
        f"{len(mx.events('connect'))} connects, {len(mx.events('disconnect'))} disconnects"
    still_serving(mx)
