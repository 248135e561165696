"""The ``needs`` marker: ``@pytest.mark.needs("chromium", "playwright")`` (see tests/environment.py)."""
from __future__ import annotations

import pytest

from tests import environment


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "needs(*names): the test needs these from its machine "
                                       f"({', '.join(environment.CHECKS)}); a skip without them, a failure "
                                       f"under {environment.STRICT}=1")


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("needs"):
        unknown = set(mark.args) - set(environment.CHECKS)
        assert not unknown, f"{item.nodeid}: unknown need {sorted(unknown)}"
        environment.require(*mark.args)
