"""Acceptance 8: Delivery = "relay" to a downstream MTA (Postfix's smtp-sink).

The message must reach the sink intact, our 250 must come only after the
sink's, and a downstream that is down (or refuses) is reported at end of
data: 451 4.3.0 for down or 4xx, 5xx for a permanent refusal.
"""
import os
import socket
import subprocess
import time

from mx import free_port, make_message

SINK = "/usr/sbin/smtp-sink"


def start_sink(tmp_path, procs, *extra):
    if not os.access(SINK, os.X_OK):
        raise AssertionError(f"{SINK} missing: install postfix (scripts/install-deps.sh)")
    port = free_port(v6=False)
    dump = tmp_path / "sink"
    dump.mkdir()
    os.chmod(dump, 0o777)
    log = open(tmp_path / "sink.log", "wb")
    args = [SINK, "-4", "-d", f"{dump}/%s."]
    if os.geteuid() == 0:
        args += ["-u", "nobody"]
    args += [*extra, f"127.0.0.1:{port}", "100"]
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    procs.append(p)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert p.poll() is None, (tmp_path / "sink.log").read_text()
            assert time.monotonic() < deadline, "smtp-sink never listened"
            time.sleep(0.05)
    return port, dump


def relay_server(mx_factory, target):
    return mx_factory(options={"Delivery": "relay", "Relay_Target": target})


def test_relay_reaches_sink_after_its_250(mx_factory, tmp_path, procs):
    port, dump = start_sink(tmp_path, procs, "-W", ".:2")  # 2 s before answering "."
    mx = relay_server(mx_factory, f"127.0.0.1:{port}")
    msgid, data = make_message(body_lines=["relay body", ".dot line", "", "last"])
    with mx.connect() as c:
        c.ehlo()
        c.expect("MAIL FROM:<a@example.test>", 250)
        c.expect("RCPT TO:<r1@example.test>", 250)
        c.expect("RCPT TO:<r2@example.test>", 250)
        c.expect("DATA", 354)
        c.send(data.replace(b"\r\n.", b"\r\n..") + b".\r\n")
        t0 = time.monotonic()
        code, text = c.reply(timeout=30)
        waited = time.monotonic() - t0
        assert code == 250, (code, text)
        assert waited >= 1.8, f"our 250 came {waited:.2f}s after the data: before the sink's"
    files = sorted(p for p in dump.iterdir() if p.is_file())
    assert len(files) == 1, f"dump files: {files}"
    got = files[0].read_bytes()
    assert b"X-Rcpt-Args: <r1@example.test>" in got and b"X-Rcpt-Args: <r2@example.test>" in got
    assert b"X-Mail-Args: <a@example.test>" in got
    # the sink stores LF line ends and our message as received, dot-unstuffed
    assert data.replace(b"\r\n", b"\n") in got, got[-600:]
    assert mx.new_files() == []


def test_relay_downstream_down_is_451(mx_factory):
    mx = relay_server(mx_factory, f"127.0.0.1:{free_port(v6=False)}")
    _, data = make_message()
    with mx.connect() as c:
        c.ehlo()
        c.expect("MAIL FROM:<a@example.test>", 250)
        c.expect("RCPT TO:<down@example.test>", 250)
        c.expect("DATA", 354)
        c.send(data + b".\r\n")
        code, text = c.reply(timeout=60)
        assert code == 451 and text[0].startswith("4.3.0"), (code, text)


def test_relay_downstream_refusals(mx_factory, tmp_path, procs):
    port, dump = start_sink(tmp_path, procs, "-r", "RCPT")  # every RCPT gets 4xx downstream
    mx = relay_server(mx_factory, f"127.0.0.1:{port}")
    _, data = make_message()
    with mx.connect() as c:
        c.ehlo()
        c.send_message("a@example.test", ["soft@example.test"], data, expect_final=451)
    assert [p for p in dump.iterdir() if p.is_file() and p.stat().st_size] == []


def test_relay_downstream_permanent_refusal(mx_factory, tmp_path, procs):
    port, _ = start_sink(tmp_path, procs, "-f", ".")  # end of data refused with 5xx
    mx = relay_server(mx_factory, f"127.0.0.1:{port}")
    _, data = make_message()
    with mx.connect() as c:
        c.ehlo()
        c.expect("MAIL FROM:<a@example.test>", 250)
        c.expect("RCPT TO:<hard@example.test>", 250)
        c.expect("DATA", 354)
        c.send(data + b".\r\n")
        code, text = c.reply(timeout=30)
        assert 500 <= code < 600 and text[0].startswith("5."), (code, text)
