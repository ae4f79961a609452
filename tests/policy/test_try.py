"""Issue 5, case 6: `mxsieve try` rehearses cases 1 and 2 without a socket.

The same script (examples/policy/connect.sieve), the same numbers as the live
tests in test_cidr_tarpit.py: 1000 other sessions from the client's address
-> a 10 s delay; 10,000 in its /24 as well -> 20 s; none -> 0. --sessions
gives the *other* sessions (the client's own is counted, as in the server).
No server runs here; under strace, no network socket is opened.
"""
import os
import re
import shutil
import subprocess

import pytest

import pol
from mx import BINARY, SLOW

SEED = str(pol.SEED_SCRIPT)


def run_try(*args):
    r = pol.try_run(*args)
    assert r.returncode == 0, f"mxsieve try {' '.join(args)}: exit {r.returncode}\n{r.stderr}"
    return r.stdout


def delay(out):
    m = re.fullmatch(r"(\d+) s", pol.try_value(out, "delay"))
    assert m, out
    return int(m.group(1))


def test_case1_one_address_over_1000():
    out = run_try("--phase", "connect", "--client", "127.0.0.1",
                  "--sessions", "127.0.0.1=1000", "--script", SEED)
    assert pol.try_value(out, "tarpit") == "10 s", out
    assert delay(out) == 10
    assert "counter: connect:too many connections /32 (informational)" in out


def test_case1_at_the_limit_is_not_tarpitted():
    # 999 others + itself = 1000: not "gt 1000"
    out = run_try("--phase", "connect", "--client", "127.0.0.1",
                  "--sessions", "127.0.0.1=999", "--script", SEED)
    assert delay(out) == 0, out


def test_case2_slash24_and_both_rules():
    out = run_try("--phase", "connect", "--client", "203.0.113.77",
                  "--sessions", "203.0.113.0/24=10000", "--script", SEED)
    assert delay(out) == 10, out
    assert "too many connections /24" in out and "too many connections /32" not in out
    out = run_try("--phase", "connect", "--client", "203.0.113.1",
                  "--sessions", "203.0.113.1=1000", "--sessions", "203.0.113.0/24=9000",
                  "--script", SEED)
    assert delay(out) == 20, out


def test_without_extra_sessions_no_delay():
    out = run_try("--phase", "connect", "--client", "127.0.0.1", "--script", SEED)
    assert delay(out) == 0, out
    assert "tarpit:" not in out or pol.try_value(out, "tarpit") == "0 s", out


def test_ipv6_script():
    from test_cidr_tarpit import V6_SCRIPT
    import tempfile
    with tempfile.NamedTemporaryFile("w", suffix=".sieve", delete=False) as f:
        f.write(V6_SCRIPT)
    try:
        out = run_try("--phase", "connect", "--client", "2001:db8::1",
                      "--sessions", "2001:db8::1=20", "--sessions", "2001:db8::/64=180",
                      "--script", f.name)
        assert delay(out) == 8, out
        out = run_try("--phase", "connect", "--client", "2001:db8:0:1::1",
                      "--sessions", "2001:db8::/64=500", "--script", f.name)
        assert delay(out) == 0, out
    finally:
        os.unlink(f.name)


@pytest.mark.skipif(not shutil.which("strace"), reason="strace is not installed")
def test_try_opens_no_network_socket(tmp_path):
    trace = tmp_path / "strace.out"
    r = subprocess.run(["strace", "-f", "-o", str(trace), "-e", "trace=socket,connect,bind",
                        str(BINARY), "try", "--phase", "connect", "--client", "127.0.0.1",
                        "--sessions", "127.0.0.1=1000", "--script", SEED],
                       capture_output=True, text=True, timeout=30 * SLOW,
                       # LeakSanitizer cannot run under ptrace (SAN builds)
                       env={**os.environ, "ASAN_OPTIONS": "detect_leaks=0"})
    assert r.returncode == 0, r.stderr
    assert "delay: 10 s" in r.stdout
    calls = [ln for ln in trace.read_text().splitlines()
             if re.search(r"\b(socket|connect|bind)\(", ln)]
    net = [ln for ln in calls if "AF_INET" in ln or "connect(" in ln or "bind(" in ln]
    assert not net, "mxsieve try touched the network:\n" + "\n".join(net)


# --------------------------------------------------------------------------
# The sieve stanza's max_tarpit and max_dns_lookups, through `try -c`: 0 is
# a setting (no delay, no lookup), and an absent option is the documented
# default (docs/CONFIGURATION.md: 60 s and 4), not the engine's own.

LIMITS_SCRIPT = "ec_tarpit 100;\n" + "".join(
    f'$a{i} = ec_dns_lookup "x{i}.example" "A";\n' for i in range(5))


def try_with_stanza(tmp_path, options):
    (tmp_path / "limits.sieve").write_text(LIMITS_SCRIPT)
    (tmp_path / "limits.conf").write_text(
        'Maildir = "md"\n'
        'ESMTP_Listener { Listen "127.0.0.1:54001" { } }\n'
        'sieve "t" {\n  script connect_phase1 { source = "limits.sieve" }\n'
        '  runtime_error = "continue"\n'
        + "".join(f"  {k} = {v}\n" for k, v in options.items()) + "}\n")
    return run_try("--phase", "connect", "-c", tmp_path / "limits.conf")


def test_try_limits_zero_means_zero(tmp_path):
    out = try_with_stanza(tmp_path, {"max_tarpit": 0, "max_dns_lookups": 0})
    assert delay(out) == 0, out
    errors = [ln for ln in out.splitlines() if "too many DNS lookups" in ln]
    assert errors and "limit max_dns_lookups = 0" in errors[0], out
    assert "dns: x0.example" not in out, out


def test_dns_lookups_are_counted_over_both_slots(tmp_path):
    """max_dns_lookups bounds the phase (docs): three lookups in phase1
    leave one for phase2 (each slot used to get its own four)."""
    for n in (1, 2):
        (tmp_path / f"p{n}.sieve").write_text("".join(
            f'$a{i} = ec_dns_lookup "s{n}x{i}.example" "A";\n' for i in range(3)))
    (tmp_path / "two.conf").write_text(
        'Maildir = "md"\n'
        'ESMTP_Listener { Listen "127.0.0.1:54001" { } }\n'
        'sieve "t" {\n  script connect_phase1 { source = "p1.sieve" }\n'
        '  script connect_phase2 { source = "p2.sieve" }\n'
        '  runtime_error = "continue"\n  max_dns_lookups = 4\n}\n')
    out = run_try("--phase", "connect", "-c", tmp_path / "two.conf")
    asked = [ln for ln in out.splitlines() if ln.startswith("dns: ")]
    assert len(asked) == 4, out
    assert "dns: s2x0.example" in out and "dns: s2x1.example" not in out, out
    assert "p2.sieve:2: runtime error, skipped: too many DNS lookups (limit max_dns_lookups = 4)" \
        in out, out


def test_try_limits_defaults_are_the_documented_ones(tmp_path):
    out = try_with_stanza(tmp_path, {})
    assert delay(out) == 60, out
    assert "limit max_dns_lookups = 4" in out, out
    # and without any configuration, the engine's defaults are the same
    (tmp_path / "bare.sieve").write_text(LIMITS_SCRIPT)
    out = run_try("--phase", "connect", "--script", tmp_path / "bare.sieve")
    assert delay(out) == 60, out
    assert "limit max_dns_lookups = 4" in out, out


def test_message_headers_are_read_as_the_server_reads_them(tmp_path):
    """`--message` indexes headers with the server's rules (one shared
    parser): blanks before the colon, a line longer than 8 KiB (it was
    split, and its tail could become a field of its own), more than 256
    fields (the server takes 512)."""
    script = tmp_path / "h.sieve"
    script.write_text('if header :contains "Subject" "tail" { ec_log "subject"; }\n'
                      'if exists "X-Fake" { ec_log "fake"; }\n'
                      'if header :is "X-Last" "yes" { ec_log "last"; }\n')
    cases = {
        "blanks.eml": "Subject : hello tail\r\n\r\nbody\r\n",
        "long.eml": "Subject: " + "a" * 8185 + "X-Fake: yes tail\r\nX-Last: yes\r\n\r\nb\r\n",
        "many.eml": "".join(f"X-H{i}: v\r\n" for i in range(300)) + "X-Last: yes\r\n\r\nb\r\n",
    }
    want = {"blanks.eml": {"subject"}, "long.eml": {"subject", "last"}, "many.eml": {"last"}}
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        out = run_try("--phase", "data", "--script", script, "--message", tmp_path / name)
        logs = {ln.rsplit(": ", 1)[1] for ln in out.splitlines() if ln.startswith("log: ")}
        assert logs == want[name], (name, out)


def test_bad_listener_port_and_message_are_refused(tmp_path):
    script = tmp_path / "s.sieve"
    script.write_text("keep;\n")
    for opt, value in (("--listener", "99999"), ("--listener", "-1"), ("--listener", "abc"),
                       ("--port", "70000")):
        r = pol.try_run("--phase", "connect", opt, value, "--script", script)
        assert r.returncode == 2 and "want a number from 0 to" in r.stderr, (opt, value, r)
    r = pol.try_run("--phase", "data", "--script", script, "--message", tmp_path)
    assert r.returncode != 0 and "Is a directory" in r.stderr, r


def test_a_runtime_error_is_answered_with_the_servers_words(tmp_path):
    script = tmp_path / "e.sieve"
    script.write_text('($a) = audit_connections_on_service "garbage";\n')
    out = run_try("--phase", "connect", "--script", script)
    assert "reply: 451 4.3.0 Temporary policy failure, try again later" in out, out


def test_fixture_limits_and_values_are_named(tmp_path):
    """Each fixture limit has its own message (the 65th --dns was told its
    syntax was wrong; the 65th --sessions got the bare usage); an empty
    --vctx-conn key is refused; --sieve-eval --size takes a number only."""
    script = tmp_path / "s.sieve"
    script.write_text("keep;\n")
    dns = [a for i in range(65) for a in ("--dns", f"h{i}/A=192.0.2.1")]
    r = pol.try_run("--phase", "connect", "--script", script, *dns)
    assert r.returncode != 0 and "at most 64 --dns answers" in r.stderr, r
    sess = [a for i in range(65) for a in ("--sessions", f"192.0.2.{i}=1")]
    r = pol.try_run("--phase", "connect", "--script", script, *sess)
    assert r.returncode == 2 and "at most 64 --sessions" in r.stderr, r
    r = pol.try_run("--phase", "ehlo", "--script", script, "--vctx-conn", "=v")
    assert r.returncode != 0 and "wants KEY=VALUE" in r.stderr, r
    import subprocess
    from mx import BINARY
    r = subprocess.run([str(BINARY), "--sieve-eval", str(script), "--phase", "data",
                        "--size", "abc"], capture_output=True, text=True, timeout=20)
    assert r.returncode == 1 and 'bad fixture value for size: "abc"' in r.stderr, r


def test_multiline_reply_is_printed_as_the_server_sends_it(tmp_path):
    """The server's shape (test_phases.py): every line gets the code, '-' on
    all but the last, and the enhanced status; the text's last newline
    opens no empty line."""
    script = tmp_path / "m.sieve"
    script.write_text('ec_action 550 text:\n5.7.1 first line\nsecond line\n.\n;\n')
    out = run_try("--phase", "rcptto", "--script", script)
    lines = [ln for ln in out.splitlines() if ln.startswith("reply: ")]
    assert lines == ["reply: 550-5.7.1 first line", "reply: 550 5.7.1 second line"], out
