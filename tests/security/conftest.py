"""Fixtures for the security suite: the end-to-end harness (tests/e2e/mx.py)
and its fixtures (tests/e2e/conftest.py) reused as they are, plus a few
helpers that only hostile tests need (RSS, process status, building).

The e2e conftest is loaded under its own module name so that both folders'
conftest.py files can live in one pytest run.
"""
import importlib.util
import pathlib
import sys

E2E = pathlib.Path(__file__).resolve().parent.parent / "e2e"
if str(E2E) not in sys.path:
    sys.path.insert(0, str(E2E))

import mx as _harness  # noqa: E402,F401  (tests/e2e/mx.py: imported once here, so test modules can `from mx import ...`)

_spec = importlib.util.spec_from_file_location("mxsieve_e2e_conftest", E2E / "conftest.py")
_e2e = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_e2e)

# Re-exported so pytest registers them for this folder too.
mx_factory = _e2e.mx_factory
mx = _e2e.mx
procs = _e2e.procs
world_tmp = _e2e.world_tmp
pytest_runtest_makereport = _e2e.pytest_runtest_makereport

