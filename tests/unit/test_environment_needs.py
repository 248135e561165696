"""tests/environment.py: a missing thing CI provides is a skip, and a failure under IMGSRV_TEST_STRICT=1;
a missing privilege is a skip either way."""
from __future__ import annotations

import pytest

from tests import environment


@pytest.mark.parametrize("value,strict", [("1", True), ("true", True), ("", False), ("0", False), (None, False)])
def test_strict_is_read_from_the_environment(monkeypatch, value, strict):
    if value is None:
        monkeypatch.delenv(environment.STRICT, raising=False)
    else:
        monkeypatch.setenv(environment.STRICT, value)
    assert environment.strict() is strict


def test_a_missing_need_skips_and_fails_under_strict(monkeypatch):
    monkeypatch.setitem(environment.CHECKS, "chromium", lambda: "no Chromium at /nowhere")
    monkeypatch.delenv(environment.STRICT, raising=False)
    with pytest.raises(pytest.skip.Exception, match="no Chromium at /nowhere") as skipped:
        environment.require("playwright", "chromium")
    assert skipped.value.allow_module_level, "a module that needs it at import would stop the whole run"
    monkeypatch.setenv(environment.STRICT, "1")
    with pytest.raises(pytest.fail.Exception, match="no Chromium at /nowhere.*IMGSRV_TEST_STRICT=1"):
        environment.require("chromium")


def test_a_missing_privilege_skips_even_under_strict(monkeypatch):
    monkeypatch.setenv(environment.STRICT, "1")
    with pytest.raises(pytest.skip.Exception, match="needs privileges: mount"):
        environment.needs_privilege("mount")


def test_every_need_this_machine_has_passes_its_check():
    """Each check runs (no typo in a module name); under strict, all must be present."""
    found = {name: check() for name, check in environment.CHECKS.items()}
    if environment.strict():
        assert all(reason is None for reason in found.values()), found
    else:
        assert all(reason is None or isinstance(reason, str) for reason in found.values()), found
