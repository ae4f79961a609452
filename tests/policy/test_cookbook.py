"""Issue 5, case 8: every script of the Cookbook chapter of docs/POLICY.md is
a test.

The scripts are read from the document itself (fenced blocks opened with
"```sieve cookbook=NAME phase=PHASE"), so the text and the tests cannot
drift apart. Each is compiled for its phase; the per-CIDR and DNSBL scripts
run through `mxsieve try` with the numbers the text gives, the rate scripts
through `mxsieve --sieve-eval` with window/series fixtures, and the early
talker pair runs on a live server.
"""
import re
import time

import pytest

import pol
from mx import SLOW, Smtp

DOC = pol.ROOT / "docs" / "POLICY.md"
FENCE = re.compile(r"^```sieve(?P<info>[^\n]*)\n(?P<body>.*?)^```\s*$", re.S | re.M)


def cookbook_text():
    text = DOC.read_text()
    m = re.search(r"^## \d+\. Cookbook\s*$", text, re.M)
    assert m, "docs/POLICY.md has no '## N. Cookbook' chapter"
    rest = text[m.end():]
    nxt = re.search(r"^## ", rest, re.M)
    return rest[:nxt.start()] if nxt else rest


def recipes():
    out = {}
    for m in FENCE.finditer(cookbook_text()):
        info = dict(kv.split("=", 1) for kv in m.group("info").split())
        assert "cookbook" in info and "phase" in info, f"unmarked sieve block: {m.group(0)[:80]}"
        assert info["cookbook"] not in out, f"two recipes named {info['cookbook']}"
        out[info["cookbook"]] = (info["phase"], m.group("body"))
    return out


RECIPES = recipes()
EXPECTED = {"seed", "limit-ipv4", "limit-ipv6", "dnsbl", "greeting-pause", "early-talker",
            "connection-rate", "failure-rate", "recipient-budget"}


@pytest.fixture
def recipe_file(tmp_path):
    def write(name):
        path = tmp_path / f"{name}.sieve"
        path.write_text(RECIPES[name][1])
        return path
    return write


def test_the_chapter_has_every_recipe():
    assert set(RECIPES) == EXPECTED, (sorted(set(RECIPES) - EXPECTED),
                                      sorted(EXPECTED - set(RECIPES)))


def test_the_seed_is_the_example_verbatim():
    assert RECIPES["seed"][1] == pol.SEED_SCRIPT.read_text()


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_compiles_for_its_phase(recipe_file, name):
    phase = RECIPES[name][0]
    r = pol.compile_run(recipe_file(name), phase)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), (r.stdout, r.stderr)


def run_try(path, *args):
    r = pol.try_run("--script", path, *args)
    assert r.returncode == 0, (r.stdout, r.stderr)
    return r.stdout


def reply(out):
    return pol.try_value(out, "reply")


def delay(out):
    return pol.try_value(out, "delay")


def test_seed_rehearsal(recipe_file):
    f = recipe_file("seed")
    c = ["--phase", "connect"]
    assert delay(run_try(f, *c, "--client", "127.0.0.1", "--sessions", "127.0.0.1=1000")) == "10 s"
    assert delay(run_try(f, *c, "--client", "203.0.113.1", "--sessions", "203.0.113.1=1000",
                         "--sessions", "203.0.113.0/24=9000")) == "20 s"
    assert delay(run_try(f, *c, "--client", "127.0.0.1")) == "0 s"


def test_limit_ipv4_rehearsal(recipe_file):
    f = recipe_file("limit-ipv4")
    c = ["--phase", "connect", "--client", "192.0.2.7"]
    assert reply(run_try(f, *c, "--sessions", "192.0.2.7=49")).startswith("220")
    assert reply(run_try(f, *c, "--sessions", "192.0.2.7=50")) == (
        "421 4.7.0 too many connections from 192.0.2.7")
    assert reply(run_try(f, *c, "--sessions", "192.0.2.0/24=499")).startswith("220")
    assert reply(run_try(f, *c, "--sessions", "192.0.2.0/24=500")) == (
        "421 4.7.0 too many connections from your network")
    # IPv6 clients are not judged by IPv4 prefixes
    assert reply(run_try(f, "--phase", "connect", "--client", "2001:db8::7",
                         "--sessions", "2001:db8::7=5000")).startswith("220")


def test_limit_ipv6_rehearsal(recipe_file):
    f = recipe_file("limit-ipv6")
    c = ["--phase", "connect", "--client", "2001:db8:1:2::7"]
    out = run_try(f, *c, "--sessions", "2001:db8:1:2::/64=200")
    assert delay(out) == "10 s" and reply(out).startswith("220"), out
    assert delay(run_try(f, *c, "--sessions", "2001:db8:1:2::/64=199")) == "0 s"
    out = run_try(f, *c, "--sessions", "2001:db8:1:3::/64=2000")  # same /48, other /64
    assert reply(out) == "421 4.7.0 too many connections from your network", out
    # IPv4 clients skip it
    assert delay(run_try(f, "--phase", "connect", "--client", "192.0.2.1",
                         "--sessions", "192.0.2.0/24=5000")) == "0 s"


def test_dnsbl_rehearsal(recipe_file):
    f = recipe_file("dnsbl")
    c = ["--phase", "connect"]
    out = run_try(f, *c, "--client", "127.0.0.2",
                  "--dns", "2.0.0.127.dnsbl.example/A=127.0.0.2",
                  "--dns", "2.0.0.127.dnsbl.example/TXT=spam source")
    assert reply(out) == "554 5.7.1 127.0.0.2 is listed: spam source", out
    assert "counter: connect:dnsbl (5xx)" in out
    # not listed, and a failing DNSBL: both pass (fail open)
    assert reply(run_try(f, *c, "--client", "127.0.0.3")).startswith("220")
    assert reply(run_try(f, *c, "--client", "127.0.0.3",
                         "--dns", "3.0.0.127.dnsbl.example/A=SERVFAIL")).startswith("220")
    # IPv6: nibbles
    nib = ".".join(reversed("20010db8" + "0" * 23 + "2"))
    out = run_try(f, *c, "--client", "2001:db8::2", "--dns", f"{nib}.dnsbl.example/A=127.0.0.2",
                  "--dns", f"{nib}.dnsbl.example/TXT=v6 source")
    assert reply(out) == "554 5.7.1 2001:db8::2 is listed: v6 source", out


def sieve_eval(path, phase, *args):
    import subprocess
    r = subprocess.run([str(pol.BINARY), "--sieve-eval", str(path), "--phase", phase,
                        "--from", "a@example.test", "--to", "b@example.test", *args],
                       capture_output=True, text=True, timeout=20 * SLOW)
    out = dict(ln.split("=", 1) for ln in r.stdout.splitlines() if "=" in ln)
    return out


def test_connection_rate(recipe_file):
    f = recipe_file("connection-rate")
    c = ["--client", "192.0.2.9"]
    out = sieve_eval(f, "connect", *c, "--window", "connections 0 /24=301")
    assert (out.get("action"), out.get("code")) == ("reply", "421"), out
    out = sieve_eval(f, "connect", *c, "--window", "connections 0 /24=300")
    assert out.get("action") == "none", out


def test_failure_rate(recipe_file):
    f = recipe_file("failure-rate")
    out = sieve_eval(f, "rcptto", "--client", "192.0.2.9", "--window", "rejections 0 /32=21")
    assert (out.get("action"), out.get("code")) == ("disconnect", "421"), out
    out = sieve_eval(f, "rcptto", "--client", "192.0.2.9", "--window", "rejections 0 /32=20")
    assert out.get("action") == "none", out


def test_recipient_budget(recipe_file):
    f = recipe_file("recipient-budget")
    out = sieve_eval(f, "rcptto", "--client", "192.0.2.9",
                     "--series", "rcpts 3600,1 /32 0-0=1000")
    assert (out.get("action"), out.get("code"), out.get("enhanced")) == ("reply", "452",
                                                                         "4.5.3"), out
    out = sieve_eval(f, "rcptto", "--client", "192.0.2.9", "--series", "rcpts 3600,1 /32 0-0=999")
    assert out.get("action") == "none" and out.get("status") == "done", out


def test_recipient_budget_live(pol_factory, recipe_file):
    """On the server: the budget (1000 in the text, 3 here) counts per client
    across sessions."""
    path = recipe_file("recipient-budget")
    path.write_text(path.read_text().replace('"1000"', '"3"'))
    srv = pol_factory(scripts={"rcptto_phase1": path})
    with Smtp("127.0.0.1", srv.port, timeout=10) as c:
        c.ehlo()
        c.expect("MAIL FROM:<a@example.test>", 250)
        c.expect("RCPT TO:<r1@example.test>", 250)
        c.expect("RCPT TO:<r2@example.test>", 250)
    with Smtp("127.0.0.1", srv.port, timeout=10) as c:
        c.ehlo()
        c.expect("MAIL FROM:<a@example.test>", 250)
        c.expect("RCPT TO:<r3@example.test>", 250)
        assert c.cmd("RCPT TO:<r4@example.test>") == (
            452, ["4.5.3 too many recipients this hour, try later"])


def test_early_talker_pair_live(pol_factory, recipe_file):
    srv = pol_factory(scripts={"connect_phase1": recipe_file("greeting-pause"),
                               "ehlo_phase1": recipe_file("early-talker")},
                      monitors=["300,6"])
    polite = Smtp("127.0.0.1", srv.port, banner=False, timeout=15)
    rude = Smtp("127.0.0.1", srv.port, banner=False, timeout=15)
    try:
        t0 = time.monotonic()
        rude.send("EHLO rude.test\r\n")
        assert polite.reply()[0] == 220
        assert 4.5 <= time.monotonic() - t0 <= 7.0 * SLOW, "no greeting pause"
        assert polite.cmd("EHLO polite.test")[0] == 250
        assert rude.reply()[0] == 220
        assert rude.reply() == (554, ["5.5.0 talking before the greeting"])
        assert rude.closed_within(3 * SLOW)
    finally:
        polite.close()
        rude.close()
    st = pol.stats(srv.ctl("sieve", "stats"))
    assert st.get("ehlo:early talker (5xx)") == 1, st
    assert st.get("connect:greeting pause (informational)") == 2, st
