"""Acceptance 8: Delivery = "relay" to a downstream MTA (Postfix's smtp-sink).

The message must reach the sink intact, our 250 must come only after the
sink's, and a downstream that is down (or refuses) is reported at end of
data: 451 4.3.0 for down or 4xx, 5xx for a permanent refusal.
"""
import os
import shutil
import socket
import subprocess
import time

from mx import free_port, make_message, proxy_v1

SINK = "/usr/sbin/smtp-sink"


def start_sink(tmp_path, procs, *extra, port=None):
    """smtp-sink on a free port (or `port`), dumping each transaction into
    tmp_path/sink/ (tmp_path must be traversable by `nobody`: use the
    world_tmp fixture)."""
    if not os.access(SINK, os.X_OK):
        raise AssertionError(f"{SINK} missing: install postfix (scripts/install-deps.sh)")
    port = port or free_port(v6=False)
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


def test_relay_reaches_sink_after_its_250(mx_factory, world_tmp, procs):
    port, dump = start_sink(world_tmp, procs, "-W", ".:2")  # 2 s before answering "."
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
        text = c.send_message("a@example.test", ["down@example.test"], data, expect_final=451,
                              timeout=60)
        assert text[0].startswith("4.3.0"), text


def test_relay_down_is_held_then_tried_again(mx_factory, world_tmp, procs):
    """A next hop that cannot be reached is down for a hold of 5 s: a
    message already under way gets its 451 at once (not each its own
    connect timeout), a new transaction is refused at MAIL (451 4.4.1, no
    data sent in vain); after the hold the next message connects, and goes
    through once the next hop is back."""
    port = free_port(v6=False)
    mx = relay_server(mx_factory, f"127.0.0.1:{port}")
    _, data = make_message()
    with mx.connect() as c:
        c.ehlo()
        c.expect("MAIL FROM:<a@example.test>", 250)
        c.expect("RCPT TO:<down@example.test>", 250)
        # a second transaction already under way when the next hop is found down
        with mx.connect() as c2:
            c2.ehlo()
            c2.expect("MAIL FROM:<a@example.test>", 250)
            c2.expect("RCPT TO:<down@example.test>", 250)
            c.expect("DATA", 354)
            c.send(data + b".\r\n")
            assert c.reply(timeout=30)[0] == 451
            c2.expect("DATA", 354)
            c2.send(data + b".\r\n")
            assert c2.reply(timeout=30)[0] == 451
        # while it is held down, a new transaction is refused at MAIL
        code, text = c.cmd("MAIL FROM:<a@example.test>")
        assert (code, text[0][:5]) == (451, "4.4.1"), (code, text)
    down = mx.wait_event("relay_down")
    assert "refused" in down["error"].lower() and down["hold_s"] == "5", down
    mx.wait_log_text("down, not tried")  # the reply can reach us before its log line
    mx.wait_log_text("next hop down")
    rejects = mx.events("reject")
    reasons = [e["reason"] for e in rejects if e.get("phase") == "deliver"]
    assert "connect:" in reasons[0] and "down, not tried" in reasons[1], reasons
    assert [e["code"] for e in rejects if e.get("phase") == "mailfrom"] == ["451"], rejects
    t_down = time.monotonic()
    _, dump = start_sink(world_tmp, procs, port=port)
    deadline = time.monotonic() + 15
    with mx.connect() as c:
        c.ehlo()
        while True:
            code, text = c.cmd("MAIL FROM:<a@example.test>")
            if code == 451:  # still held down
                assert text[0].startswith("4.4.1") and time.monotonic() < deadline, (code, text)
                time.sleep(0.5)
                continue
            assert code == 250, (code, text)
            c.expect("RCPT TO:<back@example.test>", 250)
            c.expect("DATA", 354)
            c.send(data + b".\r\n")
            code, text = c.reply(timeout=30)
            if code == 250:
                break
            assert code == 451 and time.monotonic() < deadline, (code, text)
            time.sleep(0.5)
    assert time.monotonic() - t_down > 3, "the hold was not kept"
    assert mx.wait_event("relay_up")["target"] == f"127.0.0.1:{port}"
    assert len(mx.events("relay_down")) == 1


def test_relay_downstream_refusals(mx_factory, world_tmp, procs):
    port, dump = start_sink(world_tmp, procs, "-r", "RCPT")  # every RCPT gets 4xx downstream
    mx = relay_server(mx_factory, f"127.0.0.1:{port}")
    _, data = make_message()
    with mx.connect() as c:
        c.ehlo()
        c.send_message("a@example.test", ["soft@example.test"], data, expect_final=451)
    assert [p for p in dump.iterdir() if p.is_file() and p.stat().st_size] == []


def test_relay_downstream_421_in_a_pipelined_group(mx_factory, world_tmp, procs):
    """smtp-sink offers PIPELINING and answers RCPT with 421, then hangs up:
    the client gets 451 and the log keeps the downstream's 421, not a bare
    "connection lost"."""
    port, dump = start_sink(world_tmp, procs, "-Q", "RCPT")
    mx = relay_server(mx_factory, f"127.0.0.1:{port}")
    _, data = make_message()
    with mx.connect() as c:
        c.ehlo()
        c.send_message("a@example.test", ["gone@example.test"], data, expect_final=451)
    rej = mx.wait_event("reject", lambda e: e.get("phase") == "deliver")
    assert ": 421" in rej["reason"], rej
    assert [p for p in dump.iterdir() if p.is_file() and p.stat().st_size] == []


def test_relay_downstream_permanent_refusal(mx_factory, world_tmp, procs):
    port, _ = start_sink(world_tmp, procs, "-f", ".")  # end of data refused with 5xx
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


# --------------------------------------------------------------------------
# A private Postfix instance as the downstream (needs root, like Postfix)

POSTFIX_MAIN = """compatibility_level = 3.6
queue_directory = {d}/queue
data_directory = {d}/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = downstream.e2e.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
virtual_mailbox_domains = example.test
virtual_mailbox_base = {d}/vmail
virtual_mailbox_maps = static:mbox/
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
maillog_file_prefixes = {d}
maillog_file = {d}/postfix.log
smtputf8_enable = no
biff = no
"""

POSTFIX_MASTER = """127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
virtual   unix  - n n - - virtual
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


class PostfixInstance:
    """`postfix -c DIR start-fg`, stopped through its master's PID file (the
    start-fg wrapper does not exec the master when its PID is not 1)."""

    def __init__(self, d, port):
        self.d, self.port = d, port
        self.log = open(d / "fg.log", "wb")
        self.wrapper = subprocess.Popen(["/usr/sbin/postfix", "-c", str(d / "conf"), "start-fg"],
                                        stdin=subprocess.DEVNULL, stdout=self.log,
                                        stderr=self.log)

    def master_pid(self):
        try:
            return int((self.d / "queue" / "pid" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def poll(self):
        return self.wrapper.poll()

    def terminate(self):
        pid = self.master_pid()
        if pid:
            try:
                os.kill(pid, 15)
            except ProcessLookupError:
                pass
        if self.wrapper.poll() is None:
            self.wrapper.terminate()

    def wait(self, timeout):
        deadline = time.monotonic() + timeout
        pid = self.master_pid()
        while pid and time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        return self.wrapper.wait(timeout=max(0.1, deadline - time.monotonic()))

    def kill(self):
        pid = self.master_pid()
        if pid:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        self.wrapper.kill()


def start_postfix(root, procs, main_extra=""):
    assert os.geteuid() == 0, "a private Postfix instance needs root"
    assert os.access("/usr/sbin/postfix", os.X_OK), "postfix is not installed"
    d = root / "postfix"
    for sub in ("conf", "queue", "data", "vmail"):
        (d / sub).mkdir(parents=True)
    shutil.chown(d / "vmail", "nobody", "nogroup")
    shutil.chown(d / "data", "postfix")
    port = free_port(v6=False)
    (d / "conf" / "main.cf").write_text(POSTFIX_MAIN.format(d=d) + main_extra)
    (d / "conf" / "master.cf").write_text(POSTFIX_MASTER.format(port=port))
    pf = PostfixInstance(d, port)
    procs.append(pf)
    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.settimeout(5)
                if s.recv(256).startswith(b"220"):
                    s.sendall(b"QUIT\r\n")
                    break
        except OSError:
            pass
        assert pf.poll() is None or pf.master_pid(), \
            f"postfix did not start: {(d / 'fg.log').read_text()}"
        assert time.monotonic() < deadline, "postfix never listened: " + (d / "fg.log").read_text()
        time.sleep(0.1)
    return pf, d / "vmail" / "mbox" / "new"


def test_relay_to_private_postfix(mx_factory, world_tmp, procs):
    pf, new = start_postfix(world_tmp, procs)
    mx = relay_server(mx_factory, f"127.0.0.1:{pf.port}")
    msgids = []
    with mx.connect() as c:
        c.ehlo()
        for i in range(3):
            msgid, data = make_message(body_lines=[f"message {i}", ".leading dot", "x" * 900])
            c.send_message("a@example.test", [f"pf{i}@example.test"], data)
            msgids.append((msgid, data))
    files = wait_delivered(new, 3, pf)
    got = b"".join(f.read_bytes() for f in files)
    for msgid, data in msgids:
        body = data.split(b"\r\n\r\n", 1)[1].replace(b"\r\n", b"\n")
        assert body in got, f"{msgid} not intact downstream"
    # our Received header travelled with the message, below Postfix's own
    assert b"by mx.e2e.test" in got and b"downstream.e2e.test" in got


def test_relay_refuses_a_non_ascii_address_for_a_next_hop_without_smtputf8(
        mx_factory, world_tmp, procs):
    """The private Postfix runs with smtputf8_enable = no: it does not
    offer SMTPUTF8, so a message for a non-ASCII mailbox is refused with
    554 5.6.7 before anything is sent (RFC 6531: no downgrade), and an
    ASCII one on the same connection still goes through."""
    pf, new = start_postfix(world_tmp, procs)
    mx = relay_server(mx_factory, f"127.0.0.1:{pf.port}")
    _, data = make_message()
    with mx.connect() as c:
        c.ehlo()
        text = c.send_message("a@example.test", ["bj\u00f8rn@example.test"], data,
                              expect_final=554, mail_params=" SMTPUTF8", timeout=30)
        assert text[0].startswith("5.6.7"), text
        c.send_message("a@example.test", ["ascii@example.test"], data)
    assert len(wait_delivered(new, 1, pf)) == 1
    log = (pf.d / "postfix.log").read_text(errors="replace")
    assert "bj" not in log, "the non-ASCII recipient reached the next hop"


def wait_delivered(new, n, pf):
    deadline = time.monotonic() + 20
    while len(list(new.glob("*")) if new.is_dir() else []) < n and time.monotonic() < deadline:
        time.sleep(0.1)
    files = sorted(new.glob("*")) if new.is_dir() else []
    assert len(files) == n, f"Postfix delivered {len(files)} of {n}; its log:\n" + \
        (pf.d / "postfix.log").read_text()[-3000:]
    return files


def send_as(mx, clients):
    """One message per (source address, HELO), each through a PROXY header;
    returns our queue ids."""
    ids = []
    for src, helo in clients:
        dst = "2001:db8::1" if ":" in src else "192.0.2.1"
        with mx.connect_proxy(proxy_v1(src, dst)) as c:
            c.ehlo(helo)
            _, data = make_message(subject=f"from {src}")
            ids.append(c.send_message("a@example.test", ["pf@example.test"], data)[0].split()[-1])
    return ids


def test_relay_tells_postfix_the_real_client_with_xforward(mx_factory, world_tmp, procs):
    """A downstream Postfix that trusts us with XFORWARD logs the real
    client (here given by a PROXY header, IPv4 and IPv6) as orig_client, and
    our queue id as orig_queue_id."""
    pf, new = start_postfix(world_tmp, procs, "smtpd_authorized_xforward_hosts = 127.0.0.0/8\n"
                            "inet_protocols = all\n")
    mx = relay_server(mx_factory, f"127.0.0.1:{pf.port}")
    ids = send_as(mx, [("192.0.2.7", "client.example.net"), ("2001:db8::7", "six.example.net")])
    wait_delivered(new, 2, pf)
    log = (pf.d / "postfix.log").read_text()
    for ours, client in zip(ids, ("unknown[192.0.2.7]", "unknown[2001:db8::7]")):
        assert f"orig_queue_id={ours}, orig_client={client}" in log, (ours, log[-3000:])
    assert mx.events("relay_xforward") == []
    # our log names the next hop's queue id for each message
    mx.wait_event("message", lambda e: e.get("queue_id") == ids[1])
    relayed = [e.get("relayed", "") for e in mx.events("message")]
    assert len(relayed) == 2 and all(f"127.0.0.1:{pf.port}: 250 2.0.0 Ok: queued as " in r
                                     for r in relayed), relayed


def test_relay_xforward_refused_for_one_value_still_delivers(mx_factory, world_tmp, procs):
    """An IPv4-only Postfix refuses an IPv6 ADDR (501): the message goes on
    without it, the refusal is logged, and later messages still carry it."""
    pf, new = start_postfix(world_tmp, procs, "smtpd_authorized_xforward_hosts = 127.0.0.0/8\n")
    mx = relay_server(mx_factory, f"127.0.0.1:{pf.port}")
    ids = send_as(mx, [("2001:db8::7", "six.example.net"), ("192.0.2.8", "four.example.net")])
    wait_delivered(new, 2, pf)
    ev = mx.wait_event("relay_xforward")
    assert ev["queue_id"] == ids[0] and "501" in ev["reply"], ev
    log = (pf.d / "postfix.log").read_text()
    assert f"orig_queue_id={ids[1]}, orig_client=unknown[192.0.2.8]" in log, log[-3000:]
    assert f"orig_queue_id={ids[0]}" not in log


def test_relay_pipelined_refusal_of_one_recipient_delivers_to_none(mx_factory, world_tmp, procs):
    """Postfix offers PIPELINING: MAIL, both RCPTs and DATA go out in one
    write. It refuses one recipient and still answers DATA with 354 (the
    other was taken); mxsieve must not send the data (all or nothing): it
    closes, the client gets the refusal, and Postfix delivers nothing. The
    next message goes through on a fresh connection."""
    pf, new = start_postfix(world_tmp, procs,
                            "smtpd_recipient_restrictions = check_recipient_access "
                            "inline:{ {bad@example.test = 550 5.1.1 no such user} }, "
                            "permit_mynetworks, reject\n")
    mx = relay_server(mx_factory, f"127.0.0.1:{pf.port}")
    _, data = make_message(subject="two recipients, one refused")
    with mx.connect() as c:
        c.ehlo()
        text = c.send_message("a@example.test", ["good@example.test", "bad@example.test"], data,
                              expect_final=554)
        assert "no such user" not in " ".join(text), text  # the downstream's words stay here
        _, ok = make_message(subject="after the refusal")
        c.send_message("a@example.test", ["good@example.test"], ok)
    files = wait_delivered(new, 1, pf)
    got = files[0].read_bytes()
    assert b"Subject: after the refusal" in got, got[:300]
    mx.wait_event("reject", lambda e: e.get("phase") == "deliver")
    rej = [e for e in mx.events("reject") if e.get("phase") == "deliver"]
    assert len(rej) == 1 and "550 5.1.1 <bad@example.test>" in rej[0]["reason"], rej
    time.sleep(0.5)  # nothing else arrives late
    assert len(list(new.glob("*"))) == 1
    log = (pf.d / "postfix.log").read_text()
    assert "bad@example.test" in log and "lost connection after DATA" in log, log[-3000:]
