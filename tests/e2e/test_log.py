"""The log (issue 2, Logs): one key=value line per event: connect, TLS, each
accepted or refused message with its queue id, disconnect with counts and
duration. Client-supplied values are quoted, so a client cannot forge a line.
"""
import re

from mx import make_message, parse_message


def queue_id_of(reply_text):
    m = re.search(r"queued as (\S+)", " ".join(reply_text))
    assert m, f"no queue id in the 250 reply: {reply_text}"
    return m.group(1)


def test_connect_tls_message_disconnect_events(mx):
    _, data = make_message()
    with mx.connect() as c:
        port = c.sock.getsockname()[1]
        c.ehlo()
        c.starttls()
        c.ehlo()
        text = c.send_message("a@example.test", ["log1@example.test", "log2@example.test"], data)
        qid = queue_id_of(text)
        c.expect("FROBNICATE", 500)
        c.expect("QUIT", 221)
    con = mx.wait_event("connect", lambda e: e.get("port") == str(port))
    assert con.get("client") == "127.0.0.1", con
    assert con.get("listener") and con.get("proxied") in ("no", "false", "0"), con
    tls = mx.wait_event("tls", lambda e: e.get("session") == con.get("session"))
    assert tls.get("cipher") and (tls.get("protocol") or tls.get("version")), tls
    msg = mx.wait_event("message", lambda e: e.get("queue_id") == qid)
    assert msg.get("from") == "a@example.test" and msg.get("nrcpt") == "2", msg
    assert int(msg.get("size", "0")) >= len(data) - 100, msg
    raw = mx.wait_messages("log1@example.test", 1)[0]
    assert qid in parse_message(raw).get_all("Received")[0], "Received id differs from the log"
    dis = mx.wait_event("disconnect", lambda e: e.get("session") == con.get("session"))
    assert dis.get("messages") == "1" and dis.get("rcpts") == "2", dis
    assert dis.get("errors") == "1", dis
    assert any(k.startswith("duration") for k in dis), dis


def test_refused_message_logged_with_queue_id(mx):
    """A message refused at end of data (here: a bare LF) is logged with the
    queue id it was given, like an accepted one."""
    with mx.connect() as c:
        c.ehlo()
        c.send(b"MAIL FROM:<a@example.test>\r\nRCPT TO:<nolog@example.test>\r\nDATA\r\n")
        assert [c.reply()[0] for _ in range(3)] == [250, 250, 354]
        c.send(b"Subject: x\r\n\r\nbare\nlf\r\n.\r\n")
        assert c.reply()[0] == 550
    rej = mx.wait_event("reject", lambda e: e.get("code") == "550")
    assert rej.get("queue_id"), f"refused message logged without its queue id: {rej}"


def test_client_values_cannot_forge_log_lines(mx):
    _, data = make_message()
    sender = '"x event=forged client=6.6.6.6"@example.test'
    with mx.connect() as c:
        assert c.cmd("EHLO evil\tevent=forged")[0] == 501
        c.ehlo()
        c.send_message(sender, ["quoted@example.test"], data)
    lines = mx.log_text().splitlines()
    assert all(" event=forged" not in ln.split("event=", 1)[0] for ln in lines)
    events = mx.events()
    assert not [e for e in events if e.get("event") == "forged"], events
    msg = mx.wait_event("message", lambda e: "forged" in e.get("from", ""))
    assert msg.get("client") == "127.0.0.1", f"a client value overrode a field: {msg}"
