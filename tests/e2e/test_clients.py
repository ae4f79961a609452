"""Acceptance 1: real clients (smtplib, swaks) over IPv4, IPv6 and STARTTLS.

Each message must land in MAILDIR/<domain>/<local-part>/new/ with Return-Path
on top, a Received header naming the client address and our Hostname, and the
data intact byte for byte; EHLO must list every extension of the issue.
"""
import re
import smtplib
import ssl

import pytest

from mx import HOSTNAME, contains_data, make_message, parse_message, run_tool

EXTENSIONS = {"PIPELINING", "SIZE", "8BITMIME", "ENHANCEDSTATUSCODES", "STARTTLS",
              "SMTPUTF8", "CHUNKING"}


def check_delivered(raw, sender, client, sent, tls=False):
    """The delivered file `raw` carries `sent` intact with our trace headers."""
    assert raw.startswith(b"Return-Path:"), f"Return-Path is not the first line: {raw[:200]!r}"
    msg = parse_message(raw)
    assert msg["Return-Path"].strip() == f"<{sender}>", msg["Return-Path"]
    received = msg.get_all("Received")
    assert received, f"no Received header in {raw[:400]!r}"
    top = " ".join(received[0].split())
    assert client in top, f"client {client} not in the Received header: {top}"
    assert f"by {HOSTNAME}" in top, f"our Hostname not in the Received header: {top}"
    if tls:
        assert "ESMTPS" in top, f"TLS session not recorded as ESMTPS (RFC 3848): {top}"
        # and how: "(using TLSv1.3 with cipher NAME (256/256 bits))", as Postfix writes it
        m = re.search(r"\(using (TLSv1\.[23]) with cipher (\S+) \((\d+)/(\d+) bits\)\)", top)
        assert m and int(m.group(3)) >= 128, f"no TLS details in the Received header: {top}"
        assert top.index("(using") < top.index(f"by {HOSTNAME}"), top
    else:
        assert "ESMTPS" not in top and "(using" not in top, top
    assert contains_data(raw, sent), (
        f"data not intact.\nsent:\n{sent!r}\ndelivered tail:\n{raw[-len(sent) - 50:]!r}")
    # Our two trace headers come before the client's own headers.
    assert raw.index(b"Received:") < raw.index(b"From:")


def tls_ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def test_banner_and_ehlo_extensions(mx):
    with mx.connect() as c:
        assert c.banner[0] == 220
        assert HOSTNAME in c.banner[1][0], c.banner
        exts, lines = c.ehlo()
        missing = EXTENSIONS - set(exts)
        assert not missing, f"EHLO misses {missing}: {lines}"
        size = [ln for ln in lines if ln.upper().startswith("SIZE")][0]
        assert len(size.split()) == 2 and size.split()[1].isdigit(), \
            f"SIZE should announce the limit (RFC 1870): {size}"
        assert c.cmd("QUIT")[0] == 221


def test_ehlo_over_ipv6(mx):
    with mx.connect(v6=True) as c:
        assert c.banner[0] == 220
        exts, lines = c.ehlo()
        assert not EXTENSIONS - set(exts), lines


def test_starttls_no_longer_offered_after_handshake(mx):
    with mx.connect() as c:
        c.ehlo()
        c.starttls()
        exts, lines = c.ehlo()
        assert "STARTTLS" not in exts, f"STARTTLS still offered after TLS: {lines}"
        assert not (EXTENSIONS - {"STARTTLS"}) - set(exts), lines
        code, _ = c.cmd("STARTTLS")
        assert code == 503 or code == 554 or code == 502, f"second STARTTLS answered {code}"
        assert c.cmd("QUIT")[0] == 221
    e = mx.wait_event("tls")
    assert any(k in e for k in ("protocol", "version", "proto")), e
    assert "cipher" in e, e


def test_tls_session_ends_with_close_notify(mx):
    """After 221 over TLS the server sends a close_notify alert before it
    closes (RFC 8446 6.1): the client reads a clean TLS end of stream, not
    a TCP EOF in the middle of TLS (OpenSSL 3: UNEXPECTED_EOF_WHILE_READING)."""
    import ssl
    with mx.connect() as c:
        c.ehlo()
        assert c.cmd("STARTTLS")[0] == 220
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.options &= ~getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)  # Python sets it
        c.sock = ctx.wrap_socket(c.sock, suppress_ragged_eofs=False)
        c.ehlo()
        assert c.cmd("QUIT")[0] == 221
        # the 221 was read; what follows must be the alert, then EOF
        assert c.sock.recv(100) == b""  # SSLEOFError without a close_notify


def test_helo_plain_smtp(mx):
    with mx.connect() as c:
        code, text = c.cmd("HELO client.e2e.test")
        assert code == 250, text
        _, data = make_message()
        c.send_message("a@example.test", ["helo@example.test"], data)
    raws = mx.wait_messages("helo@example.test", 1)
    assert len(raws) == 1
    msg = parse_message(raws[0])
    top = " ".join(msg.get_all("Received")[0].split())
    assert "with SMTP" in top, f"HELO session should be 'with SMTP': {top}"


@pytest.mark.parametrize("family", ["ipv4", "ipv6", "starttls"])
def test_smtplib(mx, family):
    msgid, data = make_message(body_lines=[
        "plain line", ".a line that starts with a dot", "..two dots", ".", "",
        "trailing spaces   ", "tab\there", "8bit: caf\u00e9"])
    host = "::1" if family == "ipv6" else "127.0.0.1"
    port = mx.port6 if family == "ipv6" else mx.port
    with smtplib.SMTP(host, port, timeout=15) as s:
        s.ehlo("client.e2e.test")
        if family == "starttls":
            s.starttls(context=tls_ctx())
            s.ehlo("client.e2e.test")
        refused = s.sendmail("sender@example.test", ["bob@example.test", "carol@example.test"],
                             data, mail_options=["BODY=8BITMIME"])
        assert refused == {}
    for rcpt in ("bob@example.test", "carol@example.test"):
        raws = mx.wait_messages(rcpt, 1)
        assert len(raws) == 1, f"{rcpt}: {len(raws)} messages in new/"
        check_delivered(raws[0], "sender@example.test", "::1" if family == "ipv6" else "127.0.0.1",
                        data, tls=family == "starttls")
    assert len(mx.new_files()) == 2


def test_null_sender_and_case_of_domain(mx):
    _, data = make_message()
    with mx.connect() as c:
        c.ehlo()
        c.send_message("", ["dsn@EXAMPLE.TEST"], data)
    raws = mx.wait_messages("dsn@example.test", 1)
    assert len(raws) == 1, "domain must be folded to lower case in the Maildir path"
    assert parse_message(raws[0])["Return-Path"].strip() == "<>"


@pytest.mark.parametrize("family", ["ipv4", "ipv6", "starttls"])
def test_swaks(mx, tmp_path, family):
    body = "\n".join(["From: swaks@example.test", "To: dave@example.test", "Subject: swaks",
                      f"Message-ID: <swaks-{family}@e2e.test>", "", "hello from swaks",
                      "second line", "END-OF-BODY"])  # swaks adds the final CRLF
    f = tmp_path / "data.eml"
    f.write_text(body)
    server = f"[::1]:{mx.port6}" if family == "ipv6" else f"127.0.0.1:{mx.port}"
    args = ["swaks", "--server", server, "--from", "swaks@example.test", "--to",
            "dave@example.test", "--helo", "swaks.e2e.test", "--data", f"@{f}",
            "--timeout", "15"]
    if family == "starttls":
        args.append("--tls")
    r = run_tool(args, timeout=30)
    out = r.stdout.decode(errors="replace")
    assert r.returncode == 0, out + r.stderr.decode(errors="replace")
    if family == "starttls":
        assert "TLS started" in out, out
    raws = mx.wait_messages("dave@example.test", 1)
    assert len(raws) == 1
    check_delivered(raws[0], "swaks@example.test", "::1" if family == "ipv6" else "127.0.0.1",
                    (body + "\n").replace("\n", "\r\n").encode(),
                    tls=family == "starttls")
    head = parse_message(raws[0]).get_all("Received")[0]
    assert "swaks.e2e.test" in head, f"HELO name not in the Received header: {head}"


def test_every_stanza_of_the_issue(mx_factory, tmp_path):
    """A configuration with every stanza the issue names (inbound_audit, the
    seed's policy script, Control_Listener, Relay_Hosts) starts and serves."""
    from mx import ROOT
    script = ROOT / "examples" / "policy" / "connect.sieve"
    assert script.exists(), "examples/policy/connect.sieve (the seed's script) is missing"
    ctl = tmp_path / "mx.ctl"
    extra = (f'Control_Listener {{\n  Listen "{ctl}" {{ }}\n}}\n'
             'inbound_audit {\n  monitors = ( "300,6" "1800,4" )\n  max_tracked = 100000\n}\n'
             f'sieve "default" {{\n  script connect_phase1 {{\n    source = "{script}"\n  }}\n}}\n')
    mx = mx_factory(options={"Relay_Hosts": ["::1"]}, extra=extra)
    _, data = make_message()
    with mx.connect() as c:
        c.ehlo()
        c.send_message("a@example.test", ["stanza@example.test"], data)
    with mx.connect(v6=True) as c:
        c.ehlo()
        c.send_message("a@example.test", ["far@elsewhere.test"], data)
    assert len(mx.wait_messages("stanza@example.test", 1)) == 1
    assert len(mx.wait_messages("far@elsewhere.test", 1)) == 1
    assert ctl.exists(), "Control_Listener socket not created"
