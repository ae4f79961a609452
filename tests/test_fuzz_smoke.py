"""CI smoke test of the libFuzzer targets (issue 7.1).

Builds every tests/fuzz/fuzz_*.c with `make fuzz` (clang, ASan+UBSan, into
build-fuzz/), then for each target:
  * replays its regression inputs (every crash ever found is kept under
    tests/corpus/<dir>/regressions/, or as a file named regress_*), each run
    once: they must not crash any more;
  * fuzzes for FUZZ_SMOKE_SECONDS (default 10) starting from its corpus
    tests/corpus/<dir>/ (read only: new inputs go to a tmp directory).
A crash, a sanitizer report, a leak or a timeout fails the test and names
the artifact. Long runs (10 minutes and more) are by hand: docs/SECURITY.md.
"""
import os
import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
FUZZ_DIR = ROOT / "build-fuzz"
SECONDS = int(os.environ.get("FUZZ_SMOKE_SECONDS", "10"))

# target -> its corpus folder under tests/corpus (default: the name without fuzz_)
CORPUS = {
    "fuzz_config": "config",
    "fuzz_proxy": "proxy",
    "fuzz_sieve": "sieve",
    "fuzz_smtp_parse": "smtp",
    "fuzz_smtp_session": "smtp_session",
    "fuzz_smtp_socket": "smtp_session",
    "fuzz_mail_address": "mail_address",
    "fuzz_smtp_starttls": "smtp_starttls",
    "fuzz_ctl": "ctl",
    "fuzz_spool": "spool",
}

TARGETS = sorted(p.stem for p in (ROOT / "tests" / "fuzz").glob("fuzz_*.c"))


def corpus_dir(target):
    return ROOT / "tests" / "corpus" / CORPUS.get(target, target[len("fuzz_"):])


def regressions(target):
    d = corpus_dir(target)
    if not d.is_dir():
        return []
    out = [p for p in d.rglob("*") if p.is_file()
           and ("regressions" in p.relative_to(d).parts or p.name.startswith("regress_"))]
    return sorted(out)


@pytest.fixture(scope="module")
def built():
    if shutil.which("clang") is None:
        pytest.skip("clang not installed: the fuzz targets need libFuzzer")
    r = subprocess.run(["make", "-C", str(ROOT), "fuzz", f"-j{os.cpu_count() or 2}"],
                       capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, "make fuzz failed:\n" + r.stdout[-3000:] + r.stderr[-3000:]
    return FUZZ_DIR


def run(args, timeout):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0",
                                   UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"))


@pytest.mark.parametrize("target", TARGETS)
def test_fuzz_target_smoke(built, target, tmp_path):
    binary = built / target
    assert binary.exists(), f"{binary} not built"
    regs = regressions(target)
    if regs:
        r = run([str(binary), "-rss_limit_mb=2048", "-timeout=20", *map(str, regs)],
                timeout=120 + 5 * len(regs))
        assert r.returncode == 0, (f"{target}: a regression input fails again\n"
                                   + r.stderr[-6000:])
    work = tmp_path / "corpus"
    work.mkdir()
    art = tmp_path / "artifacts"
    art.mkdir()
    seeds = corpus_dir(target)
    args = [str(binary), f"-max_total_time={SECONDS}", "-rss_limit_mb=2048", "-timeout=20",
            "-print_final_stats=1", f"-artifact_prefix={art}/", str(work)]
    if seeds.is_dir():
        args.append(str(seeds))
    r = run(args, timeout=SECONDS + 300)
    found = sorted(p.name for p in art.iterdir())
    assert r.returncode == 0 and not found, (
        f"{target}: crash after fuzzing; artifacts {found} (copy them to "
        f"{seeds}/regressions/ once fixed)\n" + r.stderr[-6000:])
    execs = [ln for ln in r.stderr.splitlines() if ln.startswith("stat::number_of_executed_units")]
    print(f"\n{target}: {execs[0].split(':')[-1].strip() if execs else '?'} executions in "
          f"{SECONDS}s, {len(regs)} regressions replayed")
