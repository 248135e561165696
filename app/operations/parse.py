"""The registry of operations and the parser of both syntaxes.

An operation is given as an object ``{"op": NAME, ...params}`` or as a string ``NAME``,
``NAME=SHORTHAND`` or ``NAME=key:value,...``. Strings are tokenised into the same object
and validated by the same model, so both forms give the same errors.

Every module of this package but ``base`` and ``parse`` holds one operation; they are found
here, so adding an operation is adding its module.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Annotated, Any, Union

from pydantic import Field, TypeAdapter, ValidationError
from pydantic_core import PydanticCustomError

from .base import Operation, ShorthandError, key_values


def _discover() -> tuple[type[Operation], ...]:
    """Import every operation module of the package; the operation models, by name."""
    package = __name__.rpartition(".")[0]
    for module in pkgutil.iter_modules(importlib.import_module(package).__path__):
        if module.name not in ("base", "parse"):
            importlib.import_module(f"{package}.{module.name}")
    found: list[type[Operation]] = []
    pending = list(Operation.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if "op" in cls.model_fields:
            found.append(cls)
    return tuple(sorted(found, key=lambda c: c.name()))


OPERATION_CLASSES: tuple[type[Operation], ...] = _discover()
OPERATIONS: dict[str, type[Operation]] = {cls.name(): cls for cls in OPERATION_CLASSES}
# Names of the string form, lower case: every operation's name and aliases.
_BY_NAME: dict[str, str] = {alias.lower(): cls.name() for cls in OPERATION_CLASSES
                            for alias in (cls.name(), *cls.aliases)}

# NAME=False (or None) turns an operation off, as py-image-server's split=False did.
OFF_VALUES = frozenset({"false", "none", "null", "no", "off"})

AnyOperation = Annotated[Union[tuple(OPERATION_CLASSES)], Field(discriminator="op")]  # type: ignore[valid-type]
_ADAPTER: TypeAdapter[Operation] = TypeAdapter(AnyOperation)


def _unknown(name: str) -> PydanticCustomError:
    return PydanticCustomError(
        "unknown_operation", "unknown operation '{name}'; valid operations: {valid}",
        {"name": name, "valid": ", ".join(OPERATIONS)})


def tokenize(value: Any) -> dict[str, Any] | None:
    """One request item to the object form; None when the item turns the operation off.

    Raises PydanticCustomError (a 422 naming the item) for what cannot be read.
    """
    if isinstance(value, Operation):
        return value.model_dump()
    if isinstance(value, dict):
        name = value.get("op")
        if not isinstance(name, str):
            raise PydanticCustomError("missing_op", 'an operation object needs "op" naming the operation; '
                                      "valid operations: {valid}", {"valid": ", ".join(OPERATIONS)})
        if name not in OPERATIONS:
            raise _unknown(name)
        return value
    if not isinstance(value, str):
        raise PydanticCustomError("operation_type", "an operation is a string like {string} or an object "
                                  "like {object}", {"string": '"blur=5"', "object": '{"op": "blur", "kernel": 5}'})
    name, sep, arg = value.strip().partition("=")
    name, arg = name.strip(), arg.strip()
    canonical = _BY_NAME.get(name.lower())
    if canonical is None:
        raise _unknown(name)
    cls = OPERATIONS[canonical]
    if not sep:
        return {"op": canonical}
    if arg.lower() in OFF_VALUES:
        return None
    if arg.lower() == "true" and cls.true_means_defaults:
        return {"op": canonical}
    try:
        if ":" in arg and "," not in arg.split(":", 1)[0]:
            params = key_values(arg)
        else:
            params = cls.shorthand(arg)
    except ShorthandError as exc:
        raise PydanticCustomError("invalid_shorthand", "{op}: {problem}",
                                  {"op": canonical, "problem": str(exc)}) from None
    if "op" in params:
        raise PydanticCustomError("invalid_shorthand", "{op}: 'op' is not a parameter", {"op": canonical})
    return {"op": canonical, **params}


def parse_operation(value: Any) -> Operation | None:
    """Validate one operation given in either syntax (raises pydantic.ValidationError)."""
    try:
        data = tokenize(value)
    except PydanticCustomError as exc:
        raise ValidationError.from_exception_data("operation", [{"type": exc, "loc": (), "input": value}]) from None
    return None if data is None else _ADAPTER.validate_python(data)


def describe_operations() -> list[dict[str, Any]]:
    """The listing of GET /operations."""
    out = []
    for name, cls in OPERATIONS.items():
        doc = (cls.__doc__ or "").strip()
        out.append({"name": name, "summary": doc.splitlines()[0] if doc else "", "description": doc,
                    "examples": list(cls.examples), "fans_out": cls.fans_out,
                    "schema": cls.model_json_schema()})
    return out
