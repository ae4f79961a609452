"""Acceptance 3: the PROXY protocol (v1 and v2) on a listener that requires it.

Headers crafted here, and sent by a real haproxy (mode tcp, send-proxy and
send-proxy-v2). The proxied address must be the client in the log's connect
event and in the Received header; LOCAL and UNKNOWN keep the real peer; a bad
header, or none within Proxy_Timeout, gets no banner and a closed connection.
"""
import socket
import subprocess
import time

import pytest

from mx import SLOW, Smtp, free_port, make_message, parse_message, proxy_v1, proxy_v2, run_tool


def deliver_and_received(mx, conn, rcpt):
    """Send one message on conn; return the top Received header of the file."""
    _, data = make_message()
    assert conn.banner[0] == 220, conn.banner
    conn.ehlo()
    conn.send_message("a@example.test", [rcpt], data)
    conn.cmd("QUIT")
    raws = mx.wait_messages(rcpt, 1)
    assert len(raws) == 1
    return " ".join(parse_message(raws[0]).get_all("Received")[0].split())


def assert_client(mx, conn, rcpt, client):
    top = deliver_and_received(mx, conn, rcpt)
    assert client in top, f"proxied client {client} not in Received: {top}"
    if client != "127.0.0.1":
        assert "127.0.0.1" not in top.split(" by ")[0], f"real peer shown instead: {top}"
    mx.wait_event("connect", lambda e: e.get("client") == client)


CASES = {
    "v1-tcp4": (proxy_v1("192.0.2.7", "198.51.100.1", 40001, 25), "192.0.2.7"),
    "v1-tcp6": (proxy_v1("2001:db8::7", "2001:db8::1", 40002, 25), "2001:db8::7"),
    "v1-tcp6-mapped": (proxy_v1("::ffff:192.0.2.9", "::ffff:198.51.100.1", 40003, 25),
                       "192.0.2.9"),
    "v1-unknown": (b"PROXY UNKNOWN\r\n", "127.0.0.1"),
    "v1-unknown-with-addrs": (b"PROXY UNKNOWN ffff:f...f ffff:f...f 65535 65535\r\n",
                              "127.0.0.1"),
    "v2-tcp4": (proxy_v2("192.0.2.8", "198.51.100.1", 40004, 25), "192.0.2.8"),
    "v2-tcp6": (proxy_v2("2001:db8::8", "2001:db8::1", 40005, 25), "2001:db8::8"),
    "v2-tcp4-tlv": (proxy_v2("192.0.2.10", "198.51.100.1", 40006, 25,
                             tlvs=b"\x04\x00\x00"), "192.0.2.10"),  # a NOOP TLV
    "v2-local": (proxy_v2(local=True), "127.0.0.1"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_proxy_header_sets_client(mx, case):
    header, client = CASES[case]
    with mx.connect_proxy(header) as c:
        assert_client(mx, c, f"{case.replace('-', '')}@example.test", client)


def test_proxy_header_split_across_writes(mx):
    header = proxy_v2("192.0.2.11", "198.51.100.1", 40007, 25)
    c = Smtp("127.0.0.1", mx.proxy_port, banner=False)
    with c:
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(header)):
            c.send(header[i:i + 1])
            time.sleep(0.005)
        c.banner = c.reply()
        assert_client(mx, c, "split@example.test", "192.0.2.11")


BAD = {
    "garbage": b"HELLO WORLD\r\n",
    "smtp-first": b"EHLO client.e2e.test\r\n",
    "v1-bad-address": b"PROXY TCP4 999.0.2.1 198.51.100.1 40000 25\r\n",
    "v1-bad-port": b"PROXY TCP4 192.0.2.1 198.51.100.1 99999 25\r\n",
    "v1-family-mismatch": b"PROXY TCP4 2001:db8::1 198.51.100.1 40000 25\r\n",
    "v1-too-long": b"PROXY TCP4 " + b"1" * 200 + b"\r\n",
    "v2-bad-version": proxy_v2("192.0.2.1", "198.51.100.1")[:12] + b"\x31"
    + proxy_v2("192.0.2.1", "198.51.100.1")[13:],
    "v2-short-length": proxy_v2("192.0.2.1", "198.51.100.1")[:14] + b"\x00\x04"
    + b"\xc0\x00\x02\x01",
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_proxy_header_gets_no_banner(mx, case):
    c = Smtp("127.0.0.1", mx.proxy_port, banner=False, proxy_header=BAD[case])
    with c:
        closed = c.closed_within(6 * SLOW)
        assert not c.buf.startswith(b"220"), f"banner sent after a bad header: {c.buf!r}"
        assert c.buf == b"", f"bytes sent after a bad header: {c.buf!r}"
        assert closed, "connection left open after a bad PROXY header"
    # and the server is fine
    with mx.connect_proxy(proxy_v1("192.0.2.12", "198.51.100.1")) as ok:
        assert ok.banner[0] == 220


@pytest.mark.parametrize("partial", [b"", b"PROXY TCP4 192.0.2.1 198.51.100.1 4",
                                     proxy_v2("192.0.2.1", "198.51.100.1")[:20]],
                         ids=["nothing", "v1-partial", "v2-partial"])
def test_no_proxy_header_times_out_without_banner(mx, partial):
    c = Smtp("127.0.0.1", mx.proxy_port, banner=False, proxy_header=partial)
    with c:
        t0 = time.monotonic()
        closed = c.closed_within(8 * SLOW)
        elapsed = time.monotonic() - t0
        assert c.buf == b"", f"bytes sent without a PROXY header: {c.buf!r}"
        assert closed, "connection without PROXY header never closed"
        assert 1.5 <= elapsed <= 6 * SLOW, f"closed after {elapsed:.1f}s, Proxy_Timeout = 2"


def test_connections_that_never_became_sessions_log_no_disconnect(mx):
    """A load balancer's health check (connect, close), a bad header and a
    header cut short: no connect line, so no disconnect line either
    (docs/LOGGING.md); the cut header is a proxy_error like the bad one.
    Each used to leave an orphan disconnect line, and the cut header went
    uncounted."""
    deadline = time.monotonic() + 5 * SLOW  # the harness's start-up probes end first
    while len(mx.events("disconnect")) < len(mx.events("connect")):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    before = {e["session"] for e in mx.events("disconnect")}
    for data in (b"", BAD["garbage"], b"PROXY TCP4 192.0.2.1 19"):
        s = socket.create_connection(("127.0.0.1", mx.proxy_port), timeout=5)
        if data:
            s.sendall(data)
        time.sleep(0.1)
        s.close()
    mx.wait_event("proxy_error", lambda e: e.get("reason") == "closed in the header")
    with mx.connect_proxy(proxy_v1("192.0.2.13", "198.51.100.1")) as ok:
        ok.expect("QUIT", 221)
    mx.wait_event("disconnect", lambda e: e.get("client") == "192.0.2.13")
    assert len(mx.events("proxy_error")) == 2, mx.events("proxy_error")
    new = [e["client"] for e in mx.events("disconnect") if e["session"] not in before]
    assert new == ["192.0.2.13"], mx.events("disconnect")


def test_plain_listener_does_not_take_proxy_header(mx):
    """A PROXY line on a listener without Proxy_Protocol is just a bad command."""
    with mx.connect() as c:
        code, _ = c.cmd("PROXY TCP4 192.0.2.66 198.51.100.1 40000 25")
        assert code == 500, code
        assert all(e.get("client") != "192.0.2.66" for e in mx.events("connect"))


# --------------------------------------------------------------------------
# Through a real haproxy


def start_haproxy(tmp_path, procs, backend_port, version):
    fe4 = free_port(v6=True)
    cfg = tmp_path / f"haproxy-{version}.cfg"
    send = "send-proxy" if version == 1 else "send-proxy-v2"
    cfg.write_text(f"""global
    maxconn 200
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend fe
    bind 127.0.0.1:{fe4}
    bind [::1]:{fe4} v6only
    default_backend be
backend be
    server s1 127.0.0.1:{backend_port} {send}
""")
    run_tool(["/usr/sbin/haproxy", "-c", "-f", str(cfg)], timeout=10).check_returncode()
    log = open(tmp_path / f"haproxy-{version}.log", "wb")
    p = subprocess.Popen(["/usr/sbin/haproxy", "-db", "-f", str(cfg)], stdin=subprocess.DEVNULL,
                         stdout=log, stderr=log)
    procs.append(p)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", fe4), timeout=1).close()
            break
        except OSError:
            assert p.poll() is None, f"haproxy exited: {(tmp_path / f'haproxy-{version}.log').read_text()}"
            assert time.monotonic() < deadline, "haproxy never listened"
            time.sleep(0.05)
    return fe4


@pytest.mark.parametrize("version", [1, 2])
def test_through_haproxy(mx, tmp_path, procs, version):
    fe = start_haproxy(tmp_path, procs, mx.proxy_port, version)
    # From 127.0.0.42 (all of 127/8 is loopback): haproxy itself connects
    # from 127.0.0.1, so seeing .42 proves the header was used.
    with Smtp("127.0.0.1", fe, source="127.0.0.42") as c:
        assert_client(mx, c, f"haproxy{version}@example.test", "127.0.0.42")
    # An IPv6 client through an IPv4 hop: the server must see ::1.
    with Smtp("::1", fe) as c:
        assert_client(mx, c, f"haproxy{version}v6@example.test", "::1")


def test_proxied_address_is_the_client_for_relay_hosts(mx_factory):
    """Limits use the proxied client: Relay_Hosts names the proxied block, not
    the real (loopback) peer."""
    mx = mx_factory(options={"Relay_Hosts": ["192.0.2.0/24"]})
    with mx.connect_proxy(proxy_v1("192.0.2.50", "198.51.100.1")) as c:
        c.ehlo()
        c.expect("MAIL FROM:<a@example.test>", 250)
        c.expect("RCPT TO:<far@other.test>", 250)
    with mx.connect_proxy(proxy_v2("198.51.100.50", "198.51.100.1")) as c:
        c.ehlo()
        c.expect("MAIL FROM:<a@example.test>", 250)
        code, text = c.cmd("RCPT TO:<far@other.test>")
        assert code == 550 and text[0].startswith("5.7.1"), (code, text)
    with mx.connect() as c:  # the real peer 127.0.0.1 may not relay either
        c.ehlo()
        c.expect("MAIL FROM:<a@example.test>", 250)
        assert c.cmd("RCPT TO:<far@other.test>")[0] == 550


def test_proxied_address_counts_for_listener_sessions(mx_factory):
    """Listener_Sessions counts sessions on the proxy listener, after the header."""
    mx = mx_factory(proxy_options={"Listener_Sessions": 2})
    held = [mx.connect_proxy(proxy_v1(f"192.0.2.{i}", "198.51.100.1")) for i in (1, 2)]
    try:
        c = Smtp("127.0.0.1", mx.proxy_port, banner=False,
                 proxy_header=proxy_v1("192.0.2.3", "198.51.100.1"))
        with c:
            assert c.line() == "421 4.4.5 Service unavailable, concurrency limit reached."
    finally:
        for h in held:
            h.close()
