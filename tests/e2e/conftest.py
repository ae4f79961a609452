"""Fixtures for the end-to-end suite (the harness itself lives in mx.py).

  mx          a started server with the default e2e configuration
  mx_factory  make_server(**MxServer kwargs) -> a started server; use it when a
              test needs its own options (limits, Bare_LF, relay...)
  world_tmp   a 0755 directory under /tmp for helpers that drop privileges
  procs       a list to which a test appends helper Popen objects (haproxy,
              smtp-sink); each is stopped at teardown by PID, bounded.

Every server is stopped at teardown with SIGTERM, a bounded wait, then
SIGKILL, by PID; its log is printed when the test failed.
"""
import os
import pathlib
import shutil
import subprocess
import tempfile

import pytest

import mx as harness


def server_factory(tmp_path, request, cls, after_stop=None):
    """The body of a server fixture (a generator): yields make(start=True,
    **cls kwargs); at teardown stops every server by PID (then runs
    after_stop(srv)), prints the logs when the test failed, and fails the
    test on sanitizer or exit problems. tests/policy uses it with its own
    server class."""
    servers = []

    def make(start=True, **kw):
        kw.setdefault("name", f"mx{len(servers)}")
        srv = cls(tmp_path / kw["name"], **kw)
        servers.append(srv)
        if start:
            for attempt in range(3):
                try:
                    srv.start()
                    break
                except harness.HarnessError:
                    # a port taken between our probe and the bind: new ports
                    if attempt == 2 or "in use" not in srv.log_text().lower():
                        raise
                    srv.stop()
                    srv.exit_statuses.clear()
                    srv.repick_ports()
        return srv

    yield make
    for srv in servers:
        srv.stop()
        if after_stop:
            after_stop(srv)
    problems = [p for srv in servers for p in srv.problems()]
    failed = getattr(request.node, "rep_call", None)
    if problems or (failed is not None and failed.failed):
        for srv in servers:
            print(f"==== log of {srv.name} ({srv.log_path}) ====")
            print(srv.log_text()[-6000:])
    if problems:
        pytest.fail("server problems at teardown:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture
def mx_factory(tmp_path, request):
    yield from server_factory(tmp_path, request, harness.MxServer)


@pytest.fixture
def mx(mx_factory):
    return mx_factory()


@pytest.fixture
def procs():
    started = []
    yield started
    for p in started:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)


@pytest.fixture
def world_tmp():
    """A directory under /tmp that other users can traverse (0755): pytest's
    tmp_path sits below a 0700 directory, which helpers that drop to
    `nobody` or `postfix` (smtp-sink -u, Postfix's daemons) cannot enter."""
    d = tempfile.mkdtemp(prefix="mxsieve-e2e-")
    os.chmod(d, 0o755)
    yield pathlib.Path(d)
    shutil.rmtree(d, ignore_errors=True)


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
