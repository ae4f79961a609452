"""Issue 7.6: no open relay.

A client NOT in Relay_Hosts tries the classic relay tricks, one recipient per
transaction. Each must be refused, or accepted only as mail for an accepted
domain (Relay_Domains = example.test):

  * Delivery = "maildir": nothing appears outside MAILDIR/example.test/;
  * Delivery = "relay" to a recording smtp-sink: every recipient the sink
    ever receives has the domain example.test (case and one trailing dot
    aside) and no route, and nothing reaches the sink for a refused one.

Also: the same battery through a PROXY header claiming an outside client,
and MAIL FROM tricks (null sender, our own domain) do not change anything.
The e2e suite already covers the plain foreign domain and one source route
(tests/e2e/test_protocol.py); this is the full battery.
"""
import os
import re
import socket
import subprocess
import time

import pytest

from mx import DOMAIN, Closed, free_port, make_message, proxy_v1

SINK = "/usr/sbin/smtp-sink"

# (id, recipient as written inside RCPT TO:<...>)
TRICKS = [
    ("plain_foreign", "victim@other.test"),
    ("percent_hack", "victim%other.test@example.test"),
    ("percent_hack_double", "victim%other.test%third.test@example.test"),
    ("percent_hack_no_at", "victim%other.test"),
    ("bang_path", "other.test!victim@example.test"),
    ("bang_path_no_at", "other.test!victim"),
    ("bang_path_multi", "a.test!other.test!victim@example.test"),
    ("quoted_at", '"victim@other.test"@example.test'),
    ("quoted_at_only", '"victim@other.test"'),
    ("quoted_percent", '"victim%other.test"@example.test'),
    ("source_route", "@example.test:victim@other.test"),
    ("source_route_two", "@example.test,@mx.e2e.test:victim@other.test"),
    ("source_route_to_us", "@other.test:victim@example.test"),
    ("ip_literal", "victim@[1.2.3.4]"),
    ("ip_literal_loopback", "victim@[127.0.0.1]"),
    ("ipv6_literal", "victim@[IPv6:2001:db8::1]"),
    ("general_literal", "victim@[x-tag:other.test]"),
    ("trailing_dot_foreign", "victim@other.test."),
    ("trailing_dots_ours", "victim@example.test.."),
    ("ours_as_suffix", "victim@other.example.test"),
    ("ours_as_prefix", "victim@example.test.other.test"),
    ("ours_then_at", "victim@example.test@other.test"),
    ("mixed_case_foreign", "Victim@OTHER.Test"),
    ("mixed_case_ours", "Victim@EXAMPLE.TEST"),
    ("trailing_dot_ours", "victim@example.test."),
    ("postmaster_bare", "postmaster"),
    ("postmaster_foreign", "postmaster@other.test"),
    ("postmaster_ours", "Postmaster@example.test"),
    ("uucp_style", "other.test!example.test!victim"),
    ("colon_local", "other.test:victim@example.test"),
    ("space_domain", "victim@other.test example.test"),
    ("comment_domain", "victim@(comment)other.test"),
    ("angle_inside", "victim@other.test>@example.test"),
    ("nul_free_backslash", "victim\\@other.test@example.test"),
    ("utf8_foreign", "victim@bücher.test"),
]

SENDERS = ["", "a@example.test", "postmaster@example.test", "victim@other.test"]


def domain_ok(dom):
    """A recipient domain we accept: example.test, any case, one trailing dot."""
    d = dom[:-1] if dom.endswith(".") else dom
    return d.lower() == DOMAIN


def rcpt_domain(rcpt, route_ok=False):
    """The domain part of a mailbox as the sink records it: after the last
    '@' outside quotes (what any downstream would route on). A source route
    is None (it must never reach the sink), or dropped with route_ok (what
    we sent: RFC 5321 section 4.1.2 lets the server ignore the route, and
    mxsieve does, so "@a:u@b" is u@b)."""
    r = rcpt.strip()
    if r.startswith("<") and r.endswith(">"):
        r = r[1:-1]
    if ":" in r and r.startswith("@"):
        if not route_ok:
            return None
        r = r.split(":", 1)[1]
    depth_q = False
    at = -1
    for i, ch in enumerate(r):
        if ch == '"':
            depth_q = not depth_q
        elif ch == "@" and not depth_q:
            at = i
    return r[at + 1:] if at >= 0 else ""


def try_trick(c, sender, rcpt, data):
    """One transaction; returns the RCPT reply code (and sends the message if
    accepted). The session may be closed by the server at any point."""
    c.expect(f"MAIL FROM:<{sender}>", 250)
    code, text = c.cmd(f"RCPT TO:<{rcpt}>")
    if code == 250:
        c.expect("DATA", 354)
        c.send(data + b".\r\n")
        fcode, ftext = c.reply(timeout=30)
        assert fcode in (250, 451, 550, 554), (rcpt, fcode, ftext)
    else:
        assert 400 <= code < 600, (rcpt, code, text)
        c.expect("RSET", 250)
    return code


def run_battery(mx, connect):
    accepted = []
    for ident, rcpt in TRICKS:
        for sender in SENDERS:
            _, data = make_message(subject=f"relay trick {ident}")
            try:
                with connect() as c:
                    c.ehlo()
                    if try_trick(c, sender, rcpt, data) == 250:
                        accepted.append((ident, rcpt))
            except (Closed, OSError) as e:
                raise AssertionError(f"{ident}: connection lost ({e})")
    return accepted


def check_maildir_only_ours(mx):
    if not mx.maildir.is_dir():
        return
    for d in mx.maildir.iterdir():
        if d.name == ".spool":
            # the server's own write-ahead spool: a domain folder can never
            # be named so (a leading '.' is written %2E)
            assert sorted(p.name for p in d.iterdir()) == ["log.0", "log.1"]
            continue
        assert d.name == DOMAIN, f"mail stored for another domain: {d} " \
                                 f"({sorted(p.name for p in d.iterdir())})"


def test_relay_battery_maildir(mx):
    accepted = run_battery(mx, lambda: mx.connect())
    check_maildir_only_ours(mx)
    for ident, rcpt in accepted:
        if rcpt.lower() == "postmaster":
            continue  # RFC 5321 section 4.5.1: must be accepted; stored under our domain
        assert domain_ok(rcpt_domain(rcpt, route_ok=True) or ""), f"{ident}: accepted {rcpt!r}"
    print(f"\nrelay battery (maildir): {len(accepted)} of {len(TRICKS) * len(SENDERS)} accepted, "
          f"all into {DOMAIN}: {sorted({i for i, _ in accepted})}")


def test_relay_battery_ipv6_and_proxied_outsider(mx_factory):
    """The same from ::1 and from a PROXY header claiming an outside client,
    with Relay_Hosts naming 127.0.0.0/8 (the proxy's own address must not
    count: the proxied client is the client)."""
    mx = mx_factory(options={"Relay_Hosts": ["127.0.0.0/8"]})
    run_battery(mx, lambda: mx.connect(v6=True))
    run_battery(mx, lambda: mx.connect_proxy(proxy_v1("203.0.113.9", "192.0.2.1")))
    check_maildir_only_ours(mx)


def start_recording_sink(tmp, procs):
    if not os.access(SINK, os.X_OK):
        raise AssertionError(f"{SINK} missing: install postfix (scripts/install-deps.sh)")
    port = free_port(v6=False)
    dump = tmp / "sink"
    dump.mkdir()
    os.chmod(dump, 0o777)
    log = open(tmp / "sink.log", "wb")
    args = [SINK, "-4", "-d", f"{dump}/%s."]
    if os.geteuid() == 0:
        args += ["-u", "nobody"]
    args += [f"127.0.0.1:{port}", "100"]
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    procs.append(p)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return port, dump
        except OSError:
            assert p.poll() is None, (tmp / "sink.log").read_text()
            assert time.monotonic() < deadline, "smtp-sink never listened"
            time.sleep(0.05)


def test_relay_battery_downstream_sink(mx_factory, world_tmp, procs):
    port, dump = start_recording_sink(world_tmp, procs)
    mx = mx_factory(options={"Delivery": "relay", "Relay_Target": f"127.0.0.1:{port}"})
    accepted = run_battery(mx, lambda: mx.connect())
    run_battery(mx, lambda: mx.connect_proxy(proxy_v1("2001:db8::77", "2001:db8::1")))
    time.sleep(0.5)
    rcpts = []
    for f in sorted(p for p in dump.iterdir() if p.is_file()):
        for m in re.finditer(rb"^X-Rcpt-Args: (.*)$", f.read_bytes(), re.M):
            rcpts.append(m.group(1).decode("utf-8", "replace").split(" ")[0])
    bad = [r for r in rcpts if not domain_ok(rcpt_domain(r) or "")]
    assert not bad, f"relayed to recipients outside Relay_Domains: {bad}"
    assert rcpts, "nothing reached the sink: the accepted tricks should have"
    assert len(rcpts) >= len(accepted), (len(rcpts), len(accepted))
    assert mx.new_files() == []
    print(f"\nrelay battery (downstream): {len(rcpts)} recipients reached the sink, "
          f"all @{DOMAIN}: {sorted(set(rcpts))}")


@pytest.mark.parametrize("rcpt", ["victim@other.test", "victim%other.test@example.test",
                                  "@example.test:victim@other.test"])
def test_relay_refusals_pipelined(mx, rcpt):
    """Pipelined, the refusal of a relay recipient must not let DATA through
    (503 with no valid recipient) for a foreign domain."""
    _, data = make_message()
    with mx.connect() as c:
        c.ehlo()
        c.send(f"MAIL FROM:<>\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n".encode())
        codes = [c.reply()[0] for _ in range(3)]
        if codes[1] == 250:
            assert codes[2] == 354
            c.send(data + b".\r\n")
            assert c.reply()[0] == 250
        else:
            assert codes[2] in (503, 554), codes
    check_maildir_only_ours(mx)
