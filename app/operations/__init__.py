"""The operations: one module each (its parameter model and what it knows about decoding,
the JPEG planes and boxes), the registry, and the parser of both syntaxes (``parse``)."""
from __future__ import annotations

from .base import Context, Decode, Item, Operation, PlaneStep
from .parse import AnyOperation, OPERATION_CLASSES, OPERATIONS, describe_operations, parse_operation, tokenize

__all__ = ["AnyOperation", "Context", "Decode", "Item", "Operation", "OPERATIONS", "OPERATION_CLASSES",
           "PlaneStep", "describe_operations", "parse_operation", "tokenize"]
