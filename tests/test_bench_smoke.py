"""CI smoke run of the peer benchmark (bench/run --smoke), so the harness cannot rot.

Runs the whole harness with small counts (300 messages, 10 sessions, one run,
500 tarpitted sessions) against the build under test (MXSIEVE_BUILD, as
`make check` sets it) and checks that the table came out with a number for
every peer and every measurement, and that mxsieve delivered every message,
exited cleanly on SIGTERM and logged no sanitizer report (run it with
MXSIEVE_BUILD=build-san for that). The numbers themselves are not judged here:
the CI machine is not the benchmark machine.

Peers from Debian (smtp-sink, Postfix; scripts/install-deps.sh) must be up.
Haraka comes from the npm registry: when the registry is unreachable (or node
is missing) it is reported "unavailable" and the test passes, saying so; a
Haraka that was installed but did not start fails the test.
"""
import json
import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
BUILD = pathlib.Path(os.environ.get("MXSIEVE_BUILD", REPO / "build"))
SLOW = 3.0 if "san" in BUILD.name else 1.0
HARAKA_MAY_BE_MISSING = ("npm install Haraka failed", "node/npm not installed")


def is_number(x):
    return isinstance(x, (int, float)) and x > 0


@pytest.mark.skipif(os.geteuid() != 0, reason="a private Postfix instance needs root")
def test_bench_smoke(tmp_path):
    assert (BUILD / "mxsieve").exists(), f"{BUILD}/mxsieve missing: run make first"
    out = tmp_path / "smoke.json"
    r = subprocess.run([str(REPO / "bench" / "run"), "--smoke", "--build", str(BUILD),
                        "--json", str(out)], capture_output=True, text=True,
                       timeout=180 * SLOW)
    report = r.stdout + "\n" + r.stderr[-3000:]
    assert r.returncode == 0, report
    print(r.stdout)
    res = json.loads(out.read_text())
    assert "| throughput (a)" in r.stdout and "| latency p99" in r.stdout, report

    status = res["status"]
    for peer in ("mxsieve", "smtp-sink", "Postfix"):
        assert status.get(peer) == "ok", f"{peer}: {status.get(peer)}\n{report}"
    peers = ["mxsieve", "smtp-sink", "Postfix"]
    if status.get("Haraka") == "ok":
        peers.append("Haraka")
    else:
        why = " ".join(e for e in res["errors"] if e.startswith("Haraka"))
        assert any(k in why for k in HARAKA_MAY_BE_MISSING), f"Haraka did not start: {why}"
        print(f"Haraka unavailable (allowed: npm registry or node missing): {why[:300]}")

    for mode in ("a", "b"):
        for peer in peers:
            runs = res["throughput"][mode].get(peer)
            assert runs and all(is_number(x) for x in runs), f"throughput ({mode}) {peer}: {runs}"
    # the reference rows (what storing costs): a number in both modes, and
    # smtp-sink -d wrote a file per message (an error names it otherwise)
    assert "What storing costs" in r.stdout, report
    for mode in ("a", "b"):
        for ref in ("mxsieve, stores nothing", "mxsieve, Fsync = false", "smtp-sink -d"):
            runs = res["throughput"][mode].get(ref)
            assert runs and all(is_number(x) for x in runs), f"throughput ({mode}) {ref}: {runs}"
    assert not [e for e in res["errors"] if e.startswith("smtp-sink")], res["errors"]
    for peer in peers:
        lat = res["latency"].get(peer)
        assert lat and is_number(lat["p50_ms"]) and is_number(lat["p99_ms"]), f"{peer}: {lat}"
        assert lat["errors"] == 0, f"latency {peer}: {lat}"

    rel = res["relay"]
    for peer in ("mxsieve", "smtp-sink"):
        assert rel.get(peer) and all(is_number(x) for x in rel[peer]), f"relay {peer}: {rel}"

    conc = res["concurrency"]
    assert conc.get("held") == conc.get("target") == 500, conc
    assert is_number(conc["rss_per_session_bytes"]), conc
    assert conc["probe"]["ok"] == conc["probe"]["n"], conc["probe"]
    assert conc["alive"], "mxsieve died while holding the tarpitted sessions"

    micro = res["micro"]
    assert micro["sieve_bench"].get("seed_ns_per_run"), micro["sieve_bench"]
    assert micro["deliver_bench"].get("grouped_msg_s"), micro["deliver_bench"]
    assert micro["audit_bench"].get("rows"), micro["audit_bench"]

    # Every mxsieve throughput run delivered every message into the Maildir; every
    # mxsieve exited 0 on SIGTERM without a sanitizer report.
    assert not [e for e in res["errors"] if e.startswith("mxsieve")], res["errors"]
    assert res["elapsed_s"] < 60 * SLOW, f"smoke run took {res['elapsed_s']} s"
