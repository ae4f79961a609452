"""Acceptance 6: SIGHUP reloads (or keeps the old config), SIGTERM drains.
"""
import signal
import socket
import subprocess
import time

import pytest

from mx import BINARY, SLOW, Closed, make_message


def third_rcpt_code(mx):
    with mx.connect() as c:
        c.ehlo()
        c.expect("MAIL FROM:<a@example.test>", 250)
        c.expect("RCPT TO:<h1@example.test>", 250)
        c.expect("RCPT TO:<h2@example.test>", 250)
        code, _ = c.cmd("RCPT TO:<h3@example.test>")
        c.cmd("QUIT")
        return code


def test_sighup_with_broken_config_keeps_serving(mx_factory):
    mx = mx_factory(options={"Max_Recipients_Per_Message": 2})
    assert third_rcpt_code(mx) == 452
    good = mx.conf_path.read_text()
    lines = good.splitlines()
    bad_line = 3
    lines.insert(bad_line - 1, "No_Such_Option_Anywhere = 12")
    lines.append("Max_Recipients_Per_Message = 10")  # must NOT take effect
    mx.write_config("\n".join(lines) + "\n")
    mx.signal(signal.SIGHUP)
    mx.wait_log_text(f"{mx.conf_path}:{bad_line}:")
    assert mx.running(), "server died on a bad reload"
    reload_lines = [ln for ln in mx.log_text().splitlines() if "reload" in ln.lower()]
    assert any(w in ln.lower() for ln in reload_lines for w in ("fail", "error", "keep")), \
        f"no log line says the reload failed: {reload_lines}"
    # still serving, with the old configuration
    _, data = make_message()
    with mx.connect() as c:
        c.ehlo()
        c.send_message("a@example.test", ["still@example.test"], data)
    assert len(mx.wait_messages("still@example.test", 1)) == 1
    assert third_rcpt_code(mx) == 452, "the broken file's settings were applied"


def test_sighup_with_valid_config_applies_to_new_sessions(mx_factory):
    mx = mx_factory(options={"Max_Recipients_Per_Message": 2})
    old = mx.connect()
    old.ehlo()
    assert third_rcpt_code(mx) == 452
    mx.options["Max_Recipients_Per_Message"] = 5
    mx.write_config()
    mx.signal(signal.SIGHUP)
    deadline = time.monotonic() + 5 * SLOW
    while third_rcpt_code(mx) != 250:
        assert time.monotonic() < deadline, "the reloaded Max_Recipients_Per_Message never applied"
        time.sleep(0.1)
    assert mx.running()
    # the session opened before the reload is still served
    old.expect("NOOP", 250)
    old.close()


def test_sigterm_drains_transaction_in_flight(mx_factory):
    mx = mx_factory(options={"Shutdown_Grace": 5})
    _, data = make_message(body_lines=["drain " * 10] * 50)
    half = len(data) // 2
    idle = mx.connect()
    idle.ehlo()
    c = mx.connect()
    c.ehlo()
    c.expect("MAIL FROM:<a@example.test>", 250)
    c.expect("RCPT TO:<drain@example.test>", 250)
    c.expect("DATA", 354)
    c.send(data[:half])
    time.sleep(0.2)
    mx.signal(signal.SIGTERM)
    time.sleep(0.5 * SLOW)
    # new connections are refused (closed listener, or 421 and close)
    for host in ("127.0.0.1", "::1"):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(5)
        try:
            s.connect((host, mx.port))
            got = s.recv(512)
            assert not got.startswith(b"220"), f"new session served during shutdown: {got!r}"
            assert got == b"" or got.startswith(b"421"), got
        except (ConnectionRefusedError, ConnectionResetError):
            pass
        finally:
            s.close()
    assert mx.running(), "exited before the transaction in flight finished"
    c.send(data[half:] + b".\r\n")
    code, text = c.reply(timeout=10)
    assert code == 250, f"transaction in flight got {code} {text} during the grace"
    try:
        code, _ = c.cmd("QUIT")
        assert code in (221, 421)
    except (Closed, OSError):
        pass
    c.close()
    # the idle session is closed with 421
    try:
        code, text = idle.reply(timeout=8)
        assert code == 421, (code, text)
    except Closed:
        raise AssertionError("idle session closed without a 421")
    idle.close()
    rc = mx.wait_exit(10 * SLOW)
    assert rc == 0, f"exit status {rc} after SIGTERM"
    assert len(mx.new_files("drain@example.test")) == 1


def test_sigterm_grace_expires_with_421(mx_factory):
    mx = mx_factory(options={"Shutdown_Grace": 1})
    c = mx.connect()
    c.ehlo()
    c.expect("MAIL FROM:<a@example.test>", 250)
    c.expect("RCPT TO:<late@example.test>", 250)
    c.expect("DATA", 354)
    c.send(b"Subject: never finished\r\n\r\n")
    t0 = time.monotonic()
    mx.signal(signal.SIGTERM)
    code, text = c.reply(timeout=10)
    assert code == 421, (code, text)
    assert c.closed_within(5)
    rc = mx.wait_exit(10 * SLOW)
    assert rc == 0, rc
    assert time.monotonic() - t0 < 6 * SLOW
    assert mx.new_files("late@example.test") == []


def test_sigint_exits_zero(mx):
    mx.signal(signal.SIGINT)
    assert mx.wait_exit(10 * SLOW) == 0


def test_sighup_with_broken_script_keeps_serving(mx_factory, tmp_path):
    """A reload whose policy script does not compile keeps the old
    configuration and scripts, and the log names SCRIPT:LINE."""
    from mx import ROOT
    script = tmp_path / "connect.sieve"
    script.write_text((ROOT / "examples" / "policy" / "connect.sieve").read_text())
    extra = f'sieve "p" {{\n  script connect_phase1 {{\n    source = "{script}"\n  }}\n}}\n'
    mx = mx_factory(options={"Max_Recipients_Per_Message": 2}, extra=extra)
    assert third_rcpt_code(mx) == 452
    script.write_text('if true {\n  keep;\n}\nif exists "x" {\n')
    mx.options["Max_Recipients_Per_Message"] = 10  # must NOT take effect
    mx.write_config()
    mx.signal(signal.SIGHUP)
    deadline = time.monotonic() + 5 * SLOW
    while f"{script}:" not in mx.log_text():
        assert time.monotonic() < deadline, \
            f"the log does not name {script}:LINE after a failed reload:\n{mx.log_text()[-2000:]}"
        time.sleep(0.05)
    assert mx.running()
    assert third_rcpt_code(mx) == 452, "a reload with a broken script was applied"
    _, data = make_message()
    with mx.connect() as c:
        c.ehlo()
        c.send_message("a@example.test", ["script@example.test"], data)
    assert len(mx.wait_messages("script@example.test", 1)) == 1


def test_console_reload_is_refused_during_shutdown(mx_factory, world_tmp):
    """SIGHUP is ignored once SIGTERM has closed the listeners; the
    console's `reload` and `sieve reload` are refused with an error (they
    used to reload, binding every listener again in the middle of the
    shutdown). The transaction in flight still finishes."""
    sock = world_tmp / "ctl.sock"
    mx = mx_factory(options={"Shutdown_Grace": 10},
                    extra=f'Control_Listener {{ Listen "{sock}" {{ }} }}')
    _, data = make_message()
    c = mx.connect()
    c.ehlo()
    c.expect("MAIL FROM:<a@example.test>", 250)
    c.expect("RCPT TO:<stopping@example.test>", 250)
    c.expect("DATA", 354)
    c.send(data[:10])
    mx.signal(signal.SIGTERM)
    mx.wait_event("shutdown")
    for words in (["reload"], ["sieve", "reload"]):
        r = subprocess.run([str(BINARY), "ctl", "-s", str(sock), *words],
                           capture_output=True, text=True, timeout=10 * SLOW)
        assert r.returncode == 1, (words, r.returncode, r.stdout, r.stderr)
        assert r.stdout.startswith("error: shutting down"), (words, r.stdout)
    assert mx.events("reload") == [], "a reload ran during the shutdown"
    assert len(mx.events("listen")) == 3, "a listener was bound during the shutdown"
    for host, port in (("127.0.0.1", mx.port), ("::1", mx.port6),
                       ("127.0.0.1", mx.proxy_port)):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((host, port), timeout=2)
    assert mx.running()
    c.send(data[10:] + b".\r\n")
    code, text = c.reply(timeout=10)
    assert code == 250, (code, text)
    c.close()
    assert mx.wait_exit(10 * SLOW) == 0
    assert len(mx.new_files("stopping@example.test")) == 1
