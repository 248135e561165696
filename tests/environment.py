"""What a test needs from its machine, in one place.

Two kinds of need:

- Things CI installs (the codec library, Chromium, Playwright, the Dask command, openssl,
  schemathesis): a test marked ``@pytest.mark.needs("chromium")`` skips with the reason where the
  thing is missing, and FAILS instead when ``IMGSRV_TEST_STRICT=1`` (set by ``.ci/run``), so that
  CI cannot stay green without running it.
- Privileges (mounting a filesystem, making a device node, a private mount namespace): a test
  that cannot get them calls ``needs_privilege(...)`` and skips wherever they are missing, CI
  included. The README lists these tests.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from typing import Callable, NoReturn

import pytest

STRICT = "IMGSRV_TEST_STRICT"
CHROMIUM = "/usr/bin/chromium"


def strict() -> bool:
    return os.environ.get(STRICT, "").strip() not in ("", "0", "false", "no")


def dask_command() -> str | None:
    """The ``dask`` command of this Python's environment (package distributed), else on PATH."""
    return shutil.which("dask", path=os.path.dirname(sys.executable)) or shutil.which("dask")


def _turbojpeg() -> str | None:
    from app.imaging import planar
    reason = planar.unavailable()
    return None if reason is None else f"JPEG planes unavailable: {reason} (apt-get install libturbojpeg0)"


def _module(name: str, install: str) -> Callable[[], str | None]:
    return lambda: None if importlib.util.find_spec(name) else f"the {name} package is not installed ({install})"


# name -> a check returning None when present, else why it is missing
CHECKS: dict[str, Callable[[], str | None]] = {
    "turbojpeg": _turbojpeg,
    "chromium": lambda: None if os.path.exists(CHROMIUM) else f"no Chromium at {CHROMIUM} (apt-get install chromium)",
    "playwright": _module("playwright", "pip install -r requirements-dev.txt"),
    "schemathesis": _module("schemathesis", "pip install -r requirements-dev.txt"),
    "dask": lambda: None if dask_command() else "the dask command (package distributed) is not installed",
    "openssl": lambda: None if shutil.which("openssl") else "the openssl command is not installed",
    "strace": lambda: None if shutil.which("strace") else "the strace command is not installed (apt-get install strace)",
}


def missing(reason: str) -> NoReturn:
    """Skip for something CI provides; under IMGSRV_TEST_STRICT=1, fail instead."""
    if strict():
        pytest.fail(f"{reason}; {STRICT}=1 turns this skip into a failure: CI provides it", pytrace=False)
    pytest.skip(reason, allow_module_level=True)  # also where a module needs it at import


def require(*names: str) -> None:
    """Skip (or fail under strict) unless every named thing is present."""
    for name in names:
        reason = CHECKS[name]()
        if reason is not None:
            missing(reason)


def needs_privilege(reason: str) -> NoReturn:
    """Skip, CI included: the test needs a privilege this machine does not give (not a failure under strict)."""
    pytest.skip(f"needs privileges: {reason}")
