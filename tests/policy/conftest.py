"""Fixtures for the policy end-to-end suite (issue 5).

The e2e harness (tests/e2e/mx.py) and its fixtures (tests/e2e/conftest.py)
are reused as they are; the e2e conftest is loaded under its own module name
so both folders' conftest.py files can live in one pytest run.

  pol_factory  make(scripts={"connect_phase1": TEXT or Path}, sieve_opts={},
               monitors=[...], options={...}, ...) -> a started PolicyServer
               (see pol.py); stopped at teardown by PID, its log printed when
               the test failed, and sanitizer reports turned into failures.
  procs        helper processes (dnsmasq), stopped by PID at teardown.
"""
import importlib.util
import pathlib
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent
E2E = HERE.parent / "e2e"
for p in (str(E2E), str(HERE)):
    if p not in sys.path:
        sys.path.insert(0, p)

import pol  # noqa: E402

_spec = importlib.util.spec_from_file_location("mxsieve_e2e_conftest_policy", E2E / "conftest.py")
_e2e = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_e2e)

procs = _e2e.procs
pytest_runtest_makereport = _e2e.pytest_runtest_makereport


@pytest.fixture(scope="session", autouse=True)
def _nofile():
    pol.raise_nofile()


@pytest.fixture
def pol_factory(tmp_path, request):
    yield from _e2e.server_factory(tmp_path, request, pol.PolicyServer,
                                   after_stop=lambda srv: srv.cleanup_ctl_dir())
