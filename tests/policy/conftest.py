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

import mx as harness  # noqa: E402  (tests/e2e/mx.py)
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
    servers = []

    def make(start=True, **kw):
        kw.setdefault("name", f"mx{len(servers)}")
        srv = pol.PolicyServer(tmp_path / kw["name"], **kw)
        servers.append(srv)
        if start:
            for attempt in range(3):
                try:
                    srv.start()
                    break
                except harness.HarnessError:
                    if attempt == 2 or "in use" not in srv.log_text().lower():
                        raise
                    srv.stop()
                    srv.exit_statuses.clear()
                    srv.repick_ports()
        return srv

    yield make
    for srv in servers:
        srv.stop()
        srv.cleanup_ctl_dir()
    problems = [p for srv in servers for p in srv.problems()]
    failed = getattr(request.node, "rep_call", None)
    if problems or (failed is not None and failed.failed):
        for srv in servers:
            print(f"==== log of {srv.name} ({srv.log_path}) ====")
            print(srv.log_text()[-6000:])
    if problems:
        pytest.fail("server problems at teardown:\n" + "\n".join(problems), pytrace=False)
