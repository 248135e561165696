"""Mistakes in operations: each is refused with a pydantic error naming the parameter and
why, and the string form and the object form give the same error for the same mistake."""
from __future__ import annotations

import math

import pytest
from pydantic import ValidationError
from pydantic_core import PydanticCustomError

from app.operations import OPERATIONS, parse_operation


def errors_of(item) -> list[tuple[str, tuple, str]]:
    """(type, loc without the union tag, message) of every error ``parse_operation`` raises for ``item``."""
    try:
        result = parse_operation(item)
    except ValidationError as exc:
        out = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            if loc and loc[0] in OPERATIONS:  # pydantic's discriminator tag
                loc = loc[1:]
            out.append((err["type"], loc, err["msg"]))
        return out
    except PydanticCustomError as exc:
        return [(exc.type, (), exc.message())]
    pytest.fail(f"{item!r} was accepted as {result!r}")


# (string form, object form, error type, field)
SAME_MISTAKE = [
    ("blur=kernal:5", {"op": "blur", "kernal": 5}, "extra_forbidden", ("kernal",)),
    ("resize=scal:0.5", {"op": "resize", "scal": 0.5}, "extra_forbidden", ("scal",)),
    ("faces=action:blur,min_neighbours:3", {"op": "faces", "action": "blur", "min_neighbours": 3},
     "extra_forbidden", ("min_neighbours",)),
    ("blur=4", {"op": "blur", "kernel": 4}, "value_error", ("kernel",)),
    ("threshold=method:otsu,block_size:4", {"op": "threshold", "method": "otsu", "block_size": 4},
     "value_error", ("block_size",)),
    ("encode=quality:101", {"op": "encode", "quality": 101}, "less_than_equal", ("quality",)),
    ("quality=0", {"op": "encode", "quality": 0}, "greater_than_equal", ("quality",)),
    ("encode=compression:10", {"op": "encode", "compression": 10}, "less_than_equal", ("compression",)),
    ("resize=0", {"op": "resize", "scale": 0}, "greater_than", ("scale",)),
    ("resize=-1", {"op": "resize", "scale": -1}, "greater_than", ("scale",)),
    ("resize=17", {"op": "resize", "scale": 17}, "less_than_equal", ("scale",)),
    ("resize=0x600", {"op": "resize", "width": 0, "height": 600}, "greater_than_equal", ("width",)),
    ("split=0x2", {"op": "split", "rows": 0, "cols": 2}, "greater_than_equal", ("rows",)),
    ("split=2x65", {"op": "split", "rows": 2, "cols": 65}, "less_than_equal", ("cols",)),
    ("split=rows:2,overlap:-1", {"op": "split", "rows": 2, "overlap": -1}, "greater_than_equal", ("overlap",)),
    ("threshold=256", {"op": "threshold", "value": 256}, "less_than_equal", ("value",)),
    ("threshold=sauvola", {"op": "threshold", "method": "sauvola"}, "literal_error", ("method",)),
    ("rotate=45", {"op": "rotate", "angle": 45}, "literal_error", ("angle",)),
    ("flip=diagonal", {"op": "flip", "axis": "diagonal"}, "literal_error", ("axis",)),
    ("faces=smile", {"op": "faces", "action": "smile"}, "literal_error", ("action",)),
    ("faces=scale_factor:1.0", {"op": "faces", "scale_factor": 1.0}, "greater_than_equal", ("scale_factor",)),
    ("faces=scale_factor:1.001", {"op": "faces", "scale_factor": 1.001}, "greater_than_equal", ("scale_factor",)),
    ("crop=left:-1", {"op": "crop", "left": -1}, "greater_than_equal", ("left",)),
    ("crop=0,0,0,10", {"op": "crop", "x": 0, "y": 0, "width": 0, "height": 10}, "greater_than_equal", ("width",)),
    ("redact=x:0,y:0,width:5,height:5,color:[0,0,256]",
     {"op": "redact", "x": 0, "y": 0, "width": 5, "height": 5, "color": [0, 0, 256]},
     "less_than_equal", ("color", 2)),
    ("redact=x:0,y:0,width:5,height:5,mode:erase",
     {"op": "redact", "x": 0, "y": 0, "width": 5, "height": 5, "mode": "erase"}, "literal_error", ("mode",)),
    # NaN and Infinity are refused wherever a float is taken
    ("resize=NaN", {"op": "resize", "scale": math.nan}, "finite_number", ("scale",)),
    ("resize=Infinity", {"op": "resize", "scale": math.inf}, "finite_number", ("scale",)),
    ("blur=kernel:0,sigma:NaN", {"op": "blur", "kernel": 0, "sigma": math.nan}, "finite_number", ("sigma",)),
    ("threshold=method:adaptive_mean,c:-Infinity", {"op": "threshold", "method": "adaptive_mean", "c": -math.inf},
     "finite_number", ("c",)),
    ("faces=scale_factor:NaN", {"op": "faces", "scale_factor": math.nan}, "finite_number", ("scale_factor",)),
]


@pytest.mark.parametrize("string,obj,typ,field", SAME_MISTAKE, ids=[row[0] for row in SAME_MISTAKE])
def test_same_mistake_same_error_in_both_forms(string, obj, typ, field):
    by_string = errors_of(string)
    by_object = errors_of(obj)
    assert [(t, loc) for t, loc, _ in by_string] == [(t, loc) for t, loc, _ in by_object]
    assert (typ, field) in [(t, loc) for t, loc, _ in by_string]


@pytest.mark.parametrize("nan", ["NaN", "nan", "Infinity", "inf", "-inf"])
def test_nan_and_infinity_as_strings_in_the_object_form_are_refused(nan):
    assert errors_of({"op": "resize", "scale": nan})[0][:2] == ("finite_number", ("scale",))


@pytest.mark.parametrize("string,obj", [("blurr=5", {"op": "blurr", "kernel": 5}),
                                        ("splitquadrant=True", {"op": "splitquadrant"}),
                                        ("emboss", {"op": "emboss"})])
def test_unknown_operation_lists_the_valid_names(string, obj):
    by_string = errors_of(string)
    by_object = errors_of(obj)
    assert [e[0] for e in by_string] == [e[0] for e in by_object] == ["unknown_operation"]
    name = obj["op"]
    for _typ, _loc, message in by_string + by_object:
        assert repr(name) in message or f'"{name}"' in message
        for valid in OPERATIONS:
            assert valid in message


def test_object_without_op_is_refused_with_the_valid_names():
    [(typ, _loc, message)] = errors_of({"kernel": 5})
    assert typ == "missing_op"
    assert "blur" in message and "resize" in message


@pytest.mark.parametrize("item", [5, 3.5, None, True, ["blur=5"], b"blur=5"], ids=repr)
def test_item_that_is_neither_string_nor_object_is_refused(item):
    [(typ, _loc, message)] = errors_of(item)
    assert typ == "operation_type"
    assert "string" in message and "object" in message


@pytest.mark.parametrize("string,fragment", [
    ("crop=1,2,3", "4 integers"),
    ("crop=a,b,c,d", "4 integers"),
    ("redact=1,2,3,4,5", "4 integers"),
    ("resize=axb", "WIDTHxHEIGHT"),
    ("resize=0.5x", "WIDTHxHEIGHT"),
    ("split=3by4", "ROWSxCOLS"),
    ("split=axb", "ROWSxCOLS"),
    ("grayscale=5", "no positional value"),
    ("blur=kernel:5,kernel:7", "twice"),
    ("blur=op:resize", "'op'"),
])
def test_bad_shorthand_names_the_operation_and_the_problem(string, fragment):
    [(typ, _loc, message)] = errors_of(string)
    assert typ == "invalid_shorthand"
    assert message.startswith(string.split("=")[0].lower() + ":")
    assert fragment in message


def test_object_form_with_wrong_types_is_refused_per_field():
    errors = errors_of({"op": "crop", "x": "left", "y": 0, "width": 10, "height": [1]})
    fields = {loc for _t, loc, _m in errors}
    assert ("x",) in fields and ("height",) in fields


@pytest.mark.parametrize("item", ["resize=scale:0.5,width:100", {"op": "resize", "scale": 0.5, "width": 100},
                                  "resize=fit:cover", {"op": "resize"}])
def test_resize_needs_exactly_one_way_to_size(item):
    [(typ, _loc, message)] = errors_of(item)
    assert typ == "value_error"
    assert "scale" in message


@pytest.mark.parametrize("item", ["crop=x:0,y:0,width:10,height:10,top:5",
                                  {"op": "crop", "x": 0, "width": 10},
                                  {"op": "crop"}])
def test_crop_needs_a_box_or_margins(item):
    [(typ, _loc, _message)] = errors_of(item)
    assert typ == "value_error"


def test_rotate_and_flip_need_their_parameter():
    assert errors_of("rotate")[0][:2] == ("missing", ("angle",))
    assert errors_of({"op": "flip"})[0][:2] == ("missing", ("axis",))


@pytest.mark.parametrize("value", ["30", "30.5", "1e2", "101", "abc", "NaN"])
def test_quality_alias_gives_what_encode_quality_gives(value):
    """``quality=V`` is short for ``encode=quality:V``: same model, or the same error."""
    def outcome(item):
        try:
            return ("ok", parse_operation(item))
        except (ValidationError, PydanticCustomError):
            return ("error", [(t, loc) for t, loc, _ in errors_of(item)])
    assert outcome(f"quality={value}") == outcome(f"encode=quality:{value}")
