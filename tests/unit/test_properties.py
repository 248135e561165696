"""Property tests: whatever a client sends, paths and operations either validate or are refused
with the documented error, never anything else."""
from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from app.api.errors import field_name
from app.errors import InvalidRequest, PathOutsideRoot
from app.operations import OPERATIONS, Operation, parse_operation
from app.api.errors import STATUS_OF_REFUSAL
from app.files import resolve

PATH_ALPHABET = st.sampled_from(list("ab./\\\x00 .．~-_") + ["..", "/..", "a/", "é", "\u202e"])


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    base = tmp_path_factory.mktemp("prop")
    (base / "root" / "inside").mkdir(parents=True)
    (base / "outside").mkdir()
    os.symlink(base / "outside", base / "root" / "escape")
    os.symlink(base / "root" / "inside", base / "root" / "alias")
    return os.path.realpath(base / "root")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(PATH_ALPHABET, max_size=12).map("".join) | st.text(max_size=40))
def test_any_path_resolves_inside_the_root_or_is_refused(root, path):
    try:
        real = resolve(root, path, "images[0].input")
    except PathOutsideRoot as exc:
        assert STATUS_OF_REFUSAL[exc.code] == 403 and exc.field == "images[0].input"
        return
    except InvalidRequest as exc:
        assert STATUS_OF_REFUSAL[exc.code] == 422 and exc.field == "images[0].input" and exc.message
        return
    assert os.path.commonpath([root, real]) == root
    assert real == os.path.realpath(real)


NAMES = st.sampled_from(list(OPERATIONS) + ["splitQuadrants", "quality", "Resize", "nope", ""])
VALUES = st.one_of(st.text(max_size=12), st.integers(-10**6, 10**6).map(str), st.floats().map(str),
                   st.sampled_from(["True", "false", "None", "3x4", "x", "800x", "bottom:100", "0,-100,200,100",
                                    "kernel:0,sigma:3", "color:[0,0,255]", "NaN", "Infinity", "[", "a:b:c"]))
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda children: st.lists(children, max_size=3)
                    | st.dictionaries(st.text(max_size=8), children, max_size=3), max_leaves=8)
PARAMS = st.sampled_from(["scale", "width", "height", "fit", "rows", "cols", "overlap", "kernel", "sigma", "method",
                          "value", "block_size", "c", "x", "y", "top", "bottom", "left", "right", "mode", "color",
                          "angle", "axis", "action", "scale_factor", "min_neighbors", "min_size", "quality",
                          "optimize", "progressive", "compression", "typo"])


def _parses_or_refuses(item) -> None:
    try:
        op = parse_operation(item)
    except ValidationError as exc:
        for err in exc.errors():
            assert err["msg"]
            assert field_name(("body", "operations", 0, *err["loc"])).startswith("operations[0]")
        return
    assert op is None or isinstance(op, Operation)
    if op is not None:  # what validated once validates again, unchanged, from its normalised form
        assert parse_operation(op.model_dump(mode="json")) == op


@settings(max_examples=600, deadline=None)
@given(NAMES, VALUES, st.booleans())
def test_any_operation_string_parses_or_is_a_validation_error(name, value, with_value):
    _parses_or_refuses(f"{name}={value}" if with_value else name)


@settings(max_examples=600, deadline=None)
@given(st.one_of(NAMES, st.text(max_size=8)), st.dictionaries(PARAMS, JSON, max_size=4))
def test_any_operation_object_parses_or_is_a_validation_error(name, params):
    _parses_or_refuses({"op": name, **params})


@settings(max_examples=200, deadline=None)
@given(JSON)
def test_any_json_value_as_an_operation_parses_or_is_a_validation_error(value):
    _parses_or_refuses(value)
