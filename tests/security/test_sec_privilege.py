"""Issue 7.7: least privilege.

  * Started as root with User = "nobody", every thread of the serving process
    runs as nobody (real, effective, saved and filesystem uid and gid), with
    no supplementary groups beyond nobody's own and no capabilities.
  * The control socket cannot be used by another user: a connection as
    `daemon` (via setpriv) gets nothing, even after the socket file is made
    world-writable (the SO_PEERCRED check stands behind the file mode).
  * A policy script cannot read files or run programs: there is no such
    construct (fileinto, include, execute, pipe, filter, extprograms are
    compile errors), and a catastrophic :regex is bounded by the PCRE2 match
    limit (answered quickly, never hangs the event loop).
tests/e2e/test_server_daemon.py::test_privilege_drop checks the main uid/gid
and file ownership; this adds threads, groups, capabilities and the console.
"""
import os
import pwd
import subprocess
import time

import pytest

from mx import BINARY, SLOW, make_message
from sec import proc_status

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def as_user(user, args, timeout=10):
    pw = pwd.getpwnam(user)
    return subprocess.run(["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}",
                           "--clear-groups", "--", *args],
                          capture_output=True, text=True, timeout=timeout * SLOW)


CONNECT_SCRIPT = r"""
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(5)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print("CONNECT-REFUSED", e); sys.exit(0)
try:
    s.sendall(b"summary\n")
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
except OSError as e:
    print("IO-ERROR", e); sys.exit(0)
print("ANSWER", repr(data))
"""


@root_only
def test_dropped_to_nobody_everywhere(mx_factory, world_tmp):
    nobody = pwd.getpwnam("nobody")
    sock = world_tmp / "ctl.sock"
    mx = mx_factory(options={"User": "nobody", "Maildir": str(world_tmp / "maildir"),
                             "TLS_Dir": str(world_tmp / "tls")},
                    extra=f'Control_Listener {{ Listen "{sock}" {{ }} }}')
    # a message makes the delivery threads work
    _, data = make_message()
    with mx.connect() as c:
        c.ehlo()
        c.send_message("a@example.test", ["priv@example.test"], data)
    tasks = sorted(os.listdir(f"/proc/{mx.pid}/task"))
    assert len(tasks) >= 2, "expected delivery threads"
    for tid in tasks:
        st = proc_status(f"{mx.pid}/task/{tid}")
        assert st["Uid"].split() == [str(nobody.pw_uid)] * 4, (tid, st["Uid"])
        assert st["Gid"].split() == [str(nobody.pw_gid)] * 4, (tid, st["Gid"])
        groups = set(st.get("Groups", "").split())
        assert groups <= {str(nobody.pw_gid)}, (tid, groups)
        for cap in ("CapEff", "CapPrm", "CapAmb"):
            assert int(st[cap], 16) == 0, (tid, cap, st[cap])
    # nothing the server created is writable by others
    for p in [sock, world_tmp / "tls"]:
        if p.exists():
            assert not os.stat(p).st_mode & 0o002, f"{p} is world-writable"


@root_only
def test_control_socket_refuses_other_users(mx_factory, world_tmp):
    sock = world_tmp / "ctl.sock"
    mx = mx_factory(options={"User": "nobody", "Maildir": str(world_tmp / "maildir"),
                             "TLS_Dir": str(world_tmp / "tls")},
                    extra=f'Control_Listener {{ Listen "{sock}" {{ }} }}')
    assert sock.exists()
    mode = os.stat(sock).st_mode & 0o777
    assert not mode & 0o007, f"control socket mode {oct(mode)} lets others in"
    # root may use it
    r = subprocess.run([str(BINARY), "ctl", "-s", str(sock), "summary"], capture_output=True,
                       text=True, timeout=10 * SLOW)
    assert r.returncode == 0 and "sessions:" in r.stdout, (r.stdout, r.stderr)
    # another user may not, through the file mode ...
    r = as_user("daemon", ["/usr/bin/python3", "-c", CONNECT_SCRIPT, str(sock)])
    assert "ANSWER" not in r.stdout or "sessions:" not in r.stdout, r.stdout
    r2 = as_user("daemon", [str(BINARY), "ctl", "-s", str(sock), "summary"])
    assert r2.returncode != 0 and "sessions:" not in r2.stdout, (r2.stdout, r2.stderr)
    # ... nor when the file mode is opened up: SO_PEERCRED refuses
    os.chmod(sock, 0o777)
    r = as_user("daemon", ["/usr/bin/python3", "-c", CONNECT_SCRIPT, str(sock)])
    assert "sessions:" not in r.stdout, f"daemon read the console: {r.stdout}"
    print(f"\nas daemon on a 0777 socket: {r.stdout.strip()}")
    # and a reload from another user did not happen
    r = as_user("daemon", [str(BINARY), "ctl", "-s", str(sock), "reload"])
    assert "reloaded" not in r.stdout, r.stdout
    assert mx.running()


def test_start_cleanup_follows_no_symlink(mx_factory, tmp_path):
    """The start-up clean-up of tmp/ runs before the privileges are dropped,
    in a tree the mail user owns: a symlink anywhere in it (a tmp/, a
    mailbox, a domain pointing outside the Maildir) must not make it delete
    files elsewhere. A real leftover in a real tmp/ still goes."""
    mx = mx_factory(start=False)
    outside = tmp_path / "outside"
    victims = []
    # MAILDIR/example.test/victim/tmp -> outside/etc
    (outside / "etc").mkdir(parents=True)
    victims.append(outside / "etc" / "passwd")
    # MAILDIR/example.test/box -> outside/box (holding tmp/)
    (outside / "box" / "tmp").mkdir(parents=True)
    victims.append(outside / "box" / "tmp" / "mail")
    # MAILDIR/evil -> outside/root (holding u/tmp/)
    (outside / "root" / "u" / "tmp").mkdir(parents=True)
    victims.append(outside / "root" / "u" / "tmp" / "shadow")
    for v in victims:
        v.write_bytes(b"precious\n")
    dom = mx.maildir / "example.test"
    (dom / "victim").mkdir(parents=True)
    (dom / "victim" / "tmp").symlink_to(outside / "etc")
    (dom / "box").symlink_to(outside / "box")
    (mx.maildir / "evil").symlink_to(outside / "root")
    # a real leftover, and a symlink to a file inside a real tmp/
    real = dom / "real" / "tmp"
    real.mkdir(parents=True)
    (real / "1700000000.M1P1Q1.partial").write_bytes(b"Return-Path: <a@x>\r\nSub")
    (real / "link").symlink_to(victims[0])
    mx.start()
    cleaned = mx.wait_event("maildir_clean")
    for v in victims:
        assert v.exists(), f"the start-up clean-up deleted {v} through a symlink"
    assert not (real / "1700000000.M1P1Q1.partial").exists(), "the leftover was not removed"
    assert (real / "link").is_symlink(), "a symlink in tmp/ is not a file to remove"
    assert int(cleaned["removed"]) == 1, cleaned


# --------------------------------------------------------------------------
# Policy scripts: no file, no program


FORBIDDEN = {
    "fileinto": 'require "fileinto"; fileinto "/etc/passwd";',
    "fileinto_no_require": 'fileinto "INBOX";',
    "include": 'require "include"; include :personal "../../etc/passwd";',
    "include_bare": 'include "/etc/shadow";',
    "execute": 'require "vnd.dovecot.execute"; execute "/bin/sh" ["-c", "id"];',
    "pipe": 'require "vnd.dovecot.pipe"; pipe "sendmail";',
    "filter": 'require "vnd.dovecot.filter"; filter "cat";',
    "extprograms": 'require "extprograms"; keep;',
    "redirect": 'redirect "victim@other.test";',
    "vacation": 'require "vacation"; vacation "away";',
    "notify": 'require "enotify"; notify "mailto:victim@other.test";',
    "editheader": 'require "editheader"; addheader "X" "y";',
    "spamtest": 'require "spamtest"; keep;',
    "environment": 'require "environment"; if environment "name" "x" { keep; }',
    "foreverypart": 'require "foreverypart"; foreverypart { keep; }',
    "system_like_func": '$x = system "id"; keep;',
    "read_file_func": '$x = file_read "/etc/passwd"; keep;',
}


@pytest.mark.parametrize("src", list(FORBIDDEN.values()), ids=list(FORBIDDEN))
def test_policy_cannot_touch_files_or_programs(tmp_path, src):
    f = tmp_path / "p.sieve"
    f.write_text(src + "\n")
    r = subprocess.run([str(BINARY), "--compile", str(f), "--phase", "data"],
                       capture_output=True, text=True, timeout=10 * SLOW)
    assert r.returncode != 0, f"compiled: {src!r}\n{r.stdout}{r.stderr}"
    assert "p.sieve:" in (r.stdout + r.stderr), "error does not name the script"


REGEX_BOMB = r'''require ["envelope", "regex"];
if envelope :is "to" "probe@example.test" { reject "policy ran"; }
if envelope :regex "to" "^(a|aa)+$" { reject "matched"; }
if envelope :regex "to" "^(\w+\s?)*$" { reject "matched2"; }
keep;
'''


def test_catastrophic_regex_is_bounded(mx_factory, tmp_path):
    script = tmp_path / "rcpt.sieve"
    script.write_text(REGEX_BOMB)
    mx = mx_factory(options={"Log_Level": "info"},
                    extra=f'sieve "default" {{ script rcptto_phase1 {{ source = "{script}" }} }}')
    # the recipient is what the regex sees: 60 'a's then a non-matching char
    rcpt = "a" * 60 + "!x@example.test"
    for pat in ("^(a|aa)+$", "^(\\w+\\s?)*$"):
        assert pat in REGEX_BOMB
    with mx.connect() as c:
        c.ehlo()
        c.expect("MAIL FROM:<a@example.test>", 250)
        code, text = c.cmd("RCPT TO:<probe@example.test>")
        assert code == 550, ("the rcptto policy did not run at all in the daemon "
                             f"(src/smtp/smtp_policy.c is still a stub?): {code} {text}")
        t0 = time.monotonic()
        code, text = c.cmd(f"RCPT TO:<{rcpt}>", timeout=30)
        took = time.monotonic() - t0
        # meanwhile the server kept serving others: measured below
    # runtime_error = "fail" (the default): the match limit is a runtime error
    assert code == 451, (code, text)
    assert "too costly" in mx.log_text(), "no runtime error logged for the regex"
    assert took < 2.0 * SLOW, f"RCPT took {took:.2f}s: the regex was not bounded"
    with mx.connect() as c:
        c.expect("NOOP", 250)
    print(f"\ncatastrophic regex: RCPT answered {code} in {took * 1000:.0f} ms")
