"""Runs every C unit-test binary (tests/unit/test_*.c) as one pytest case."""
import os
import pathlib
import subprocess

import pytest

BUILD = pathlib.Path(os.environ.get("MXSIEVE_BUILD", pathlib.Path(__file__).parent.parent / "build"))
BINARIES = sorted((BUILD / "tests").glob("test_*")) if (BUILD / "tests").is_dir() else []


@pytest.mark.parametrize("binary", BINARIES, ids=[b.name for b in BINARIES])
def test_unit_binary(binary):
    r = subprocess.run([str(binary)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]


def test_unit_binaries_were_built():
    assert BINARIES, f"no unit-test binaries under {BUILD}/tests: run make first"
