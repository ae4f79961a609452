"""Issue 5, case 7: the control console.

`inbound_audit show ip ADDR/N`, `inbound_audit top N /MASK`, `sieve stats`,
`sieve reset`, `sieve reload` (a broken script keeps the old one, and the
answer and the log name FILE:LINE:COLUMN), `summary` (sessions open,
tarpitted now); the socket is mode 0600.
"""
import os
import re
import stat
import time

import pol
from mx import SLOW, Smtp, proxy_v1, proxy_v2

SCRIPT = """\
($n) = audit_connections_on_service "/32";
if ec_test :value "gt" :comparator "i;ascii-numeric" "${n}" "3" {
  ec_tarpit 5 "over three";
}
"""


def test_console_socket_is_private(pol_factory):
    srv = pol_factory(scripts={"connect_phase1": SCRIPT})
    mode = stat.S_IMODE(os.stat(srv.ctl_path).st_mode)
    assert stat.S_ISSOCK(os.stat(srv.ctl_path).st_mode)
    assert mode == 0o600, f"console socket mode {oct(mode)}"


def test_answers_are_sent_after_the_clients_half_close(pol_factory):
    """`echo CMD | socat - UNIX-CONNECT:...` half-closes after sending:
    every answer still comes back (the connection used to be freed at the
    EOF with its queued output: 370 answers of 3,000)."""
    import socket
    srv = pol_factory(scripts={"connect_phase1": SCRIPT})
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20 * SLOW)
    try:
        s.connect(str(srv.ctl_path))
        s.sendall(b"help\n" * 3000)
        s.shutdown(socket.SHUT_WR)
        got = bytearray()
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    finally:
        s.close()
    answers = got.count(b"\n.\n")
    assert answers == 3000, answers


def test_ctl_refuses_a_line_break_in_an_argument(pol_factory):
    """`mxsieve ctl summary $'x\\nreload'` sent two commands, showed the
    first answer only and exited 0, and the server reloaded."""
    import subprocess
    from mx import BINARY
    srv = pol_factory(scripts={"connect_phase1": SCRIPT})
    before = len(srv.events("reload"))
    for args in (["summary", "x\nreload"], ["inbound_audit", "show", "ip", "127.0.0.1\rreload"]):
        r = subprocess.run([str(BINARY), "ctl", "-s", str(srv.ctl_path), *args],
                           capture_output=True, text=True, timeout=10 * SLOW)
        assert r.returncode == 2 and "line breaks" in r.stderr, r
    srv.ctl("summary")  # a round trip: anything sent before it has been read
    assert len(srv.events("reload")) == before


def test_help_and_words_the_commands_do_not_take(pol_factory):
    """`help` lists every command in one shape (its words, a colon, what it
    does; the first line was plain prose), and `reload now` or `summary x`
    are refused instead of being run with the extra words ignored."""
    srv = pol_factory(scripts={"connect_phase1": SCRIPT})
    lines = srv.ctl("help").splitlines()
    assert [ln.split(":", 1)[0].split()[0] for ln in lines] == [
        "help", "reload", "summary", "inbound_audit", "sieve"], lines
    assert all(":" in ln and ln.split(":", 1)[1].strip() for ln in lines), lines
    before = len(srv.events("reload"))
    for words, usage in ((["reload", "now"], "usage: reload (no arguments)"),
                         (["summary", "x"], "usage: summary (no arguments)")):
        r = srv.ctl(*words, check=False)
        assert r.returncode == 1 and r.stdout.strip() == f"error: {usage}", r
    r = srv.ctl("help", "me", check=False)
    assert r.returncode == 1 and r.stdout.strip() == "error: usage: help (no arguments)", r
    assert srv.ctl("HELP").splitlines() == lines  # commands are case-insensitive
    assert "reloaded" in srv.ctl("sieve", "reload")
    assert "reloaded" in srv.ctl("reload")
    assert len(srv.events("reload")) == before + 2


def test_a_line_over_the_limit_gets_an_answer(pol_factory):
    """A command line longer than 4,096 bytes, its end not sent yet: the
    console answers "error: line too long" before it closes (it closed
    without a word, and `mxsieve ctl` said "connection closed")."""
    import socket
    import subprocess
    from mx import BINARY
    srv = pol_factory(scripts={"connect_phase1": SCRIPT})
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10 * SLOW)
    try:
        s.connect(str(srv.ctl_path))
        s.sendall(b"inbound_audit show ip " + b"1" * 10000)
        got = bytearray()
        while not got.endswith(b"\n.\n"):
            chunk = s.recv(4096)
            assert chunk, got
            got += chunk
        assert got == b"error: line too long\n.\n", got
    finally:
        s.close()
    r = subprocess.run([str(BINARY), "ctl", "-s", str(srv.ctl_path), "inbound_audit", "show",
                        "ip", "1" * 10000], capture_output=True, text=True, timeout=10 * SLOW)
    assert r.returncode == 1 and r.stdout == "error: line too long\n", r
    srv.ctl("summary")  # and the console goes on


def test_show_top_stats_summary_reset(pol_factory):
    srv = pol_factory(scripts={"connect_phase1": SCRIPT}, monitors=["300,3"])
    socks = []
    try:
        # 192.0.2.1: 3 sessions, 192.0.2.2: 2, 198.51.100.9: 1, 2001:db8::5: 2
        srcs = ["192.0.2.1"] * 3 + ["192.0.2.2"] * 2 + ["198.51.100.9"] + ["2001:db8::5"] * 2
        socks, _ = pol.open_many("127.0.0.1", srv.proxy_port, len(srcs),
                                 header=lambda i: (proxy_v1 if i % 2 else proxy_v2)(
                                     srcs[i], "2001:db8::1" if ":" in srcs[i] else "192.0.2.254",
                                     5000 + i, 25))
        show = srv.ctl("inbound_audit", "show", "ip", "192.0.2.0/24")
        assert pol.live_count(show) == 5
        assert "Connections 300/0: 5" in show.splitlines(), show
        assert srv.live("192.0.2.1") == 3 and srv.live("192.0.2.1/32") == 3
        assert srv.live("0.0.0.0/0") == 6
        assert srv.live("2001:db8::/64") == 2
        top = srv.ctl("inbound_audit", "top", "2", "/24").splitlines()
        assert [ln.split() for ln in top[:2]] == [["192.0.2.0/24", "5"],
                                                  ["198.51.100.0/24", "1"]], top
        top = srv.ctl("inbound_audit", "top", "1").splitlines()
        # single addresses (written with or without /32)
        assert top[0].split() in (["192.0.2.1", "3"], ["192.0.2.1/32", "3"]), top
        # a bad block is an error naming it, not a crash or a silent zero
        bad = srv.ctl("inbound_audit", "show", "ip", "300.1.1.1/8", check=False)
        assert "300.1.1.1" in bad.stdout + bad.stderr, bad

        # the 4th session from 192.0.2.1 is tarpitted: summary shows it
        tm = pol.BannerTimer("127.0.0.1", srv.proxy_port,
                             header=proxy_v1("192.0.2.1", "192.0.2.254", 6000, 25), timeout=15)
        tm.start()
        s = {}
        for _ in range(50):
            s = pol.summary(srv.ctl("summary"))
            if s.get("tarpitted") == 1:
                break
            time.sleep(0.05)
        assert s.get("tarpitted") == 1 and s.get("sessions") == 9, s
        t, line = tm.result(20)
        socks.append(tm.sock)
        assert 4.5 <= t <= 7.0 * SLOW and line.startswith("220"), (t, line)
        s = pol.summary(srv.ctl("summary"))
        assert s.get("tarpitted") == 0 and s.get("sessions") == 9, s

        st = pol.stats(srv.ctl("sieve", "stats"))
        assert st == {"connect:over three (informational)": 1}, st
        out = srv.ctl("sieve", "reset")
        assert "reset" in out
        assert pol.stats(srv.ctl("sieve", "stats")) == {}
    finally:
        pol.close_all(socks)
    assert srv.wait_live("0.0.0.0/0", 0) == 0
    assert srv.wait_live("::/0", 0) == 0
    assert pol.summary(srv.ctl("summary")).get("sessions") == 0


def test_sieve_reload_with_a_broken_script_keeps_the_old_one(pol_factory):
    srv = pol_factory(scripts={"mailfrom_phase1": 'reject "old script";\n'})
    path = srv.scripts["mailfrom_phase1"]
    with Smtp("127.0.0.1", srv.port, timeout=10) as c:
        c.cmd("EHLO a.test")
        assert c.cmd("MAIL FROM:<a@example.test>") == (550, ["5.7.1 old script"])
    # line 2, column 8: an unknown test
    path.write_text('# broken\nif not frobnicate "x" { keep; }\n')
    r = srv.ctl("sieve", "reload", check=False)
    answer = r.stdout + r.stderr
    m = re.search(re.escape(path.name) + r":(\d+):(\d+):", answer)
    assert m, f"the reload answer does not name FILE:LINE:COLUMN:\n{answer}"
    assert m.group(1) == "2", answer
    # the old script is still in force, also for a new session
    with Smtp("127.0.0.1", srv.port, timeout=10) as c:
        c.cmd("EHLO a.test")
        assert c.cmd("MAIL FROM:<a@example.test>") == (550, ["5.7.1 old script"])
    # a good script is taken
    path.write_text('reject "new script";\n')
    r = srv.ctl("sieve", "reload")
    assert "reloaded" in r, r
    with Smtp("127.0.0.1", srv.port, timeout=10) as c:
        c.cmd("EHLO a.test")
        assert c.cmd("MAIL FROM:<a@example.test>") == (550, ["5.7.1 new script"])


def test_reload_keeps_sessions_and_counters(pol_factory):
    """A session opened before a reload stays counted once, and its close
    after the reload brings the gauge back to 0."""
    srv = pol_factory(scripts={"connect_phase1": SCRIPT})
    with Smtp("127.0.0.1", srv.port, timeout=10) as c:
        assert srv.live("127.0.0.1") == 1
        assert "reloaded" in srv.ctl("sieve", "reload")
        assert srv.live("127.0.0.1") == 1
        c.ehlo()
    assert srv.wait_live("127.0.0.1", 0) == 0


COUNTER_SCRIPT = """\
ec_inc_counter "seen mail";
if envelope :localpart :is "from" "x" { reject "x"; }
if envelope :localpart :is "from" "t" { ec_action 451 "4.7.1 later"; }
ec_keep "kept";
"""


def test_sieve_stats_counter_names_and_classes(pol_factory):
    srv = pol_factory(scripts={"mailfrom_phase1": COUNTER_SCRIPT})
    with Smtp("127.0.0.1", srv.port, timeout=10) as c:
        c.ehlo()
        for local, code in (("x", 550), ("t", 451), ("a", 250), ("b", 250)):
            assert c.cmd(f"MAIL FROM:<{local}@example.test>")[0] == code
            c.expect("RSET", 250)
    st = pol.stats(srv.ctl("sieve", "stats"))
    assert st == {"mailfrom:seen mail (informational)": 4,
                  "mailfrom:mailfrom_phase1.sieve:2 (5xx)": 1,
                  "mailfrom:mailfrom_phase1.sieve:3 (4xx)": 1,
                  "mailfrom:kept (informational)": 2}, st



WINDOW_SCRIPT = """\
$h = hash_create;
if envelope :localpart :is "from" "w60" { hash_set $h "monitor" "60,10"; }
if envelope :localpart :is "from" "w300" { hash_set $h "monitor" "300,6"; }
if isset $h "monitor" {
  $c = ec_ip_connections $h;
  reject "c=${c}";
}
"""


def test_reload_names_what_needs_a_restart_and_keeps_it(pol_factory, tmp_path):
    """A reload that changes restart-only settings says which, in its answer
    and the log; the server keeps the old ones (mail still lands in the old
    Maildir, the running monitors still answer by their shape) and a script
    asking for a monitor only the new file has gets a runtime error that
    says so."""
    srv = pol_factory(scripts={"mailfrom_phase1": WINDOW_SCRIPT}, monitors=["60,10"])
    client = "198.51.100.77"
    for _ in range(2):
        with srv.connect_proxy(proxy_v1(client, "192.0.2.1"), timeout=10) as c:
            c.cmd("EHLO client.test")
    with srv.connect_proxy(proxy_v1(client, "192.0.2.1"), timeout=10) as c:
        c.cmd("EHLO client.test")
        assert c.cmd("MAIL FROM:<w60@example.test>") == (550, ["5.7.1 c=3"])
    old_maildir = srv.maildir
    r = srv.reconfigure(options={"Maildir": str(tmp_path / "other-maildir"), "Fsync": True},
                        monitors=["300,6", "60,10"])
    assert r.strip() == "reloaded; changed but kept until a restart: Maildir, Fsync, inbound_audit", r
    e = srv.wait_event("reload", lambda e: "restart_needed" in e)
    assert e["restart_needed"] == "Maildir, Fsync, inbound_audit", e
    with srv.connect_proxy(proxy_v1(client, "192.0.2.1"), timeout=10) as c:
        c.cmd("EHLO client.test")
        # the running monitor, found by its shape (it is the second of the
        # new file's list, the first of the running audit's)
        assert c.cmd("MAIL FROM:<w60@example.test>") == (550, ["5.7.1 c=4"])
        code, lines = c.cmd("MAIL FROM:<w300@example.test>")
        assert code == 451, (code, lines)
        c.expect("RSET", 250)
        c.expect("MAIL FROM:<a@example.test>", 250)
        c.expect("RCPT TO:<bob@example.test>", 250)
        c.expect("DATA", 354)
        c.send(b"Subject: kept\r\n\r\nbody\r\n.\r\n")
        assert c.reply()[0] == 250
    e = srv.wait_event("policy_error")
    assert 'no inbound_audit monitor "300,6" is running' in e["error"], e
    assert srv.maildir == old_maildir
    assert len(srv.wait_messages("bob@example.test", 1)) == 1
    assert not (tmp_path / "other-maildir").exists()
    # the comparison is with what runs: a second reload of the still
    # changed file says so again (it said nothing: it compared with the
    # first reload), and the file put back to the running values is a
    # plain reload (it named them all again)
    r = srv.reconfigure(options={"Hostname": "other.e2e.test"})
    assert r.strip() == "reloaded; changed but kept until a restart: Maildir, Fsync, inbound_audit", r
    r = srv.reconfigure(options={"Maildir": str(old_maildir), "Fsync": False}, monitors=["60,10"])
    assert r.strip() == "reloaded", r
