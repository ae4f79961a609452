"""Differential test: mxsieve's Sieve engine against Dovecot Pigeonhole.

A seeded generator writes RFC 5228 core scripts (header, address, envelope,
size, exists, not/anyof/allof, :is/:contains/:matches, the three comparators,
:count/:value with relations) of the form

    if TEST { discard; stop; }
    keep;

and messages; each pair runs through Pigeonhole's `sieve-test` (as a non-root
user) and through our engine (build/tests/test_sieve_eval --sieve-eval, data
phase), and the outcomes (discard or keep) must agree.
"""
import os
import pathlib
import random
import shutil
import subprocess
import tempfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
BUILD = pathlib.Path(os.environ.get("MXSIEVE_BUILD", ROOT / "build"))
DRIVER = BUILD / "tests" / "test_sieve_eval"
SIEVE_TEST = shutil.which("sieve-test") or "/usr/bin/sieve-test"
CASES = int(os.environ.get("SIEVE_DIFF_CASES", "240"))

MESSAGES = [
    {"from": "sender@example.com", "to": "rcpt@example.org",
     "headers": [("From", "Alice <alice@example.com>"),
                 ("To", "bob@example.org, \"Carol\" <carol@Example.NET>"),
                 ("Subject", "Hello World"), ("X-Spam", "5"), ("X-Spam", "12"),
                 ("X-Num", "007abc")]},
    {"from": "MAILER@Lists.Example.COM", "to": "Someone@example.net",
     "headers": [("From", "list-bounces@lists.example.com"),
                 ("To", "someone@example.net"), ("Subject", "[list] 42 things"),
                 ("X-Spam", "0"), ("Cc", "a@b.example, c@d.example")]},
    {"from": "bounce@example.org", "to": "postmaster@example.org",
     "headers": [("From", "MAILER-DAEMON@example.org"), ("To", "postmaster@example.org"),
                 ("Subject", "Undelivered Mail"), ("X-Num", "abc")]},
]

HEADER_NAMES = ["Subject", "From", "To", "X-Spam", "X-Num", "Cc", "X-None"]
# Not in KEYS: a "?" followed later by "*" ("?ello*"). Pigeonhole 2.3.19 (Debian
# 12) answers true for "postmaster" :matches "?ello*", against RFC 5228 2.7.1
# ("?" is exactly one character, the rest literal); we follow the RFC
# (tests/sieve/match/matches_question_then_star.sieve).
KEYS = ["hello world", "Hello", "hello*", "*World", "*", "?ello", "H?llo World", "", "example",
        "42", "12", "5", "007", "7", "abc", "list", "*[list]*", "Undelivered Mail",
        "alice@example.com", "example.org", "example.com", "bob", "carol@example.net",
        "lists.example.com", "sender", "rcpt@example.org", "postmaster", "a?c", "10", "0"]
MATCHES = [":is", ":contains", ":matches"]
COMPARATORS = [None, "i;octet", "i;ascii-casemap"]
RELS = ["gt", "ge", "lt", "le", "eq", "ne"]


def q(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def qlist(items):
    return q(items[0]) if len(items) == 1 else "[" + ", ".join(q(i) for i in items) + "]"


def gen_test(rng, depth=0):
    kind = rng.choice(["header", "header", "address", "envelope", "size", "exists",
                       "relational", "count", "logic"] if depth < 2 else
                      ["header", "address", "envelope", "size", "exists", "relational"])
    if kind == "logic":
        op = rng.choice(["not", "anyof", "allof"])
        if op == "not":
            return "not " + gen_test(rng, depth + 1)
        return op + " (" + ", ".join(gen_test(rng, depth + 1) for _ in range(rng.randint(1, 3))) + ")"
    if kind == "size":
        return "size %s %d" % (rng.choice([":over", ":under"]), rng.choice([0, 10, 100, 150, 200, 1000]))
    if kind == "exists":
        return "exists " + qlist(rng.sample(HEADER_NAMES, rng.randint(1, 2)))
    match = rng.choice(MATCHES)
    comp = rng.choice(COMPARATORS)
    opts = match + (" :comparator " + q(comp) if comp else "")
    keys = qlist(rng.sample(KEYS, rng.randint(1, 3)))
    if kind in ("relational", "count"):
        rel = rng.choice(RELS)
        comp = rng.choice(["i;ascii-numeric", "i;octet", "i;ascii-casemap"])
        tag = ":value" if kind == "relational" else ":count"
        names = qlist(rng.sample(["X-Spam", "X-Num", "Subject", "X-None", "Cc"], rng.randint(1, 2)))
        key = q(rng.choice(["0", "1", "2", "5", "10", "12", "007", "abc", ""]))
        return "header %s %s :comparator %s %s %s" % (tag, q(rel), q(comp), names, key)
    if kind == "header":
        return "header %s %s %s" % (opts, qlist(rng.sample(HEADER_NAMES, rng.randint(1, 2))), keys)
    part = rng.choice(["", ":all ", ":localpart ", ":domain "])
    if kind == "address":
        return "address %s%s %s %s" % (part, opts, qlist(rng.sample(["From", "To", "Cc"], rng.randint(1, 2))), keys)
    return "envelope %s%s %s %s" % (part, opts, qlist(rng.sample(["from", "to"], rng.randint(1, 2))), keys)


def message_bytes(m):
    lines = ["%s: %s" % h for h in m["headers"]] + ["", "body line", ""]
    return "\r\n".join(lines).encode()


def pigeonhole(script, msg, m, workdir):
    cmd = [SIEVE_TEST, "-f", m["from"] or "<>", "-a", m["to"], "-r", m["to"], str(script), str(msg)]
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "nobody", "--", "env", "HOME=" + str(workdir)] + cmd
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    out = r.stdout + r.stderr
    if "final result: success" not in out:
        return "error: " + out[-500:]
    return "discard" if "* discard" in out else "keep"


def ours(script, msg, m):
    cmd = [str(DRIVER), "--sieve-eval", str(script), "--phase", "data",
           "--from", m["from"], "--to", m["to"], "--size", str(len(msg))]
    for name, value in m["headers"]:
        cmd += ["--header", "%s: %s" % (name, value)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if "action=discard" in r.stdout:
        return "discard"
    if "action=keep" in r.stdout:
        return "keep"
    return "error: " + r.stdout + r.stderr


@pytest.mark.skipif(not os.path.exists(SIEVE_TEST), reason="dovecot-sieve (sieve-test) not installed")
@pytest.mark.skipif(not DRIVER.exists(), reason="build/tests/test_sieve_eval not built")
def test_agrees_with_pigeonhole():
    rng = random.Random(4)
    work = pathlib.Path(tempfile.mkdtemp(prefix="sieve-diff-"))
    os.chmod(work, 0o777)
    try:
        msgs = []
        for i, m in enumerate(MESSAGES):
            p = work / ("m%d.eml" % i)
            p.write_bytes(message_bytes(m))
            msgs.append(p)
        mismatches = []
        for n in range(CASES):
            test = gen_test(rng)
            script = work / ("s%d.sieve" % n)
            script.write_text('require ["envelope", "relational", "comparator-i;ascii-numeric"];\n'
                              "if %s { discard; stop; }\nkeep;\n" % test)
            os.chmod(script, 0o644)
            k = n % len(MESSAGES)
            want = pigeonhole(script, msgs[k], MESSAGES[k], work)
            got = ours(script, message_bytes(MESSAGES[k]), MESSAGES[k])
            if want != got:
                mismatches.append("message %d: %s\n  pigeonhole=%s ours=%s" % (k, test, want, got))
        assert not mismatches, "%d of %d differ:\n%s" % (len(mismatches), CASES, "\n".join(mismatches[:20]))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def gen_glob(rng, value):
    """A :matches pattern made from a header value: some stretches become
    "*", some characters "?", and now and then a character changes so that
    it does not match. No "*" after a "?" (Pigeonhole's bug, see KEYS), and
    no "?" right after a "*": there Pigeonhole 2.3.19 gives a "*" one
    character less than it took ("postmas*?e?a???e.???" on
    "postmaster@example.org": ${1} "er", which with the rest spells
    "postmaser@..."); we give "ter" (tests/unit/test_sieve.c)."""
    out, i, question_seen = [], 0, False
    while i < len(value):
        r = rng.random()
        if r < 0.2 and not question_seen:
            out.append("*")
            i += rng.randint(0, 4)
        elif r < 0.3 and not (out and out[-1] == "*"):
            out.append("?")
            question_seen = True
            i += 1
        else:
            c = value[i]
            out.append("\\" + c if c in "*?\\" else c)
            i += 1
    if rng.random() < 0.15 and out:
        out[rng.randrange(len(out))] = "#"
    if rng.random() < 0.3 and not question_seen:
        out.append("*")
    return "".join(out)


def pigeonhole_text(script, msg, m, workdir):
    cmd = [SIEVE_TEST, "-f", m["from"] or "<>", "-a", m["to"], "-r", m["to"], str(script), str(msg)]
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "nobody", "--", "env", "HOME=" + str(workdir)] + cmd
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    for line in r.stdout.splitlines():
        if "store message in folder: " in line:
            return line.split("store message in folder: ", 1)[1]
    return "error: " + (r.stdout + r.stderr)[-500:]


def ours_text(script, m):
    cmd = [str(DRIVER), "--sieve-eval", str(script), "--phase", "data",
           "--from", m["from"], "--to", m["to"]]
    for name, value in m["headers"]:
        cmd += ["--header", "%s: %s" % (name, value)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    for line in r.stdout.splitlines():
        if line.startswith("log="):
            return line.split(": ", 1)[1]
    return "error: " + r.stdout + r.stderr


@pytest.mark.skipif(not os.path.exists(SIEVE_TEST), reason="dovecot-sieve (sieve-test) not installed")
@pytest.mark.skipif(not DRIVER.exists(), reason="build/tests/test_sieve_eval not built")
def test_match_variables_agree_with_pigeonhole():
    """${0}..${9} after :matches (RFC 5229 3.2): what each wildcard took, for
    patterns made from the messages' own header values, against Pigeonhole
    (a fileinto there, an ec_log here, the same text)."""
    rng = random.Random(7)
    work = pathlib.Path(tempfile.mkdtemp(prefix="sieve-matchvars-"))
    os.chmod(work, 0o777)
    refs = "|".join("${%d}" % k for k in range(10))
    try:
        mismatches, cases = [], CASES // 2
        for n in range(cases):
            k = n % len(MESSAGES)
            m = MESSAGES[k]
            name, value = rng.choice(m["headers"])
            pat = gen_glob(rng, value)
            comp = rng.choice(["i;octet", "i;ascii-casemap"])
            test = "header :matches :comparator %s %s %s" % (q(comp), q(name), q(pat))
            msg = work / ("m%d.eml" % n)
            msg.write_bytes(message_bytes(m))
            theirs = work / ("p%d.sieve" % n)
            theirs.write_text('require ["variables", "fileinto"];\n'
                              'if %s { fileinto "M|%s|"; } else { fileinto "NOMATCH"; }\n'
                              % (test, refs))
            mine = work / ("s%d.sieve" % n)
            mine.write_text('if %s { ec_log "M|%s|"; } else { ec_log "NOMATCH"; }\n'
                            % (test, refs))
            for p in (msg, theirs, mine):
                os.chmod(p, 0o644)
            want = pigeonhole_text(theirs, msg, m, work)
            got = ours_text(mine, m)
            if want != got:
                mismatches.append("%s: %s\n  pigeonhole=%r\n  ours=      %r" % (name, test, want, got))
        assert not mismatches, "%d of %d differ:\n%s" % (len(mismatches), cases,
                                                           "\n".join(mismatches[:20]))
    finally:
        shutil.rmtree(work, ignore_errors=True)
