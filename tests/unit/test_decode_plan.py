"""The decode shortcuts a pipeline allows give the same result as the full path."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from app.imaging import codec
from app.operations import Context, Item, parse_operation
from app.pipeline import Pipeline, run
from tests import images


def pipeline(*ops: str) -> Pipeline:
    return Pipeline.of([parse_operation(op) for op in ops])


@pytest.mark.parametrize("ops, reduce, gray", [
    (["resize=0.25"], 4, False),
    (["quality=80", "resize=0.5"], 2, False),
    (["resize=0.1"], 8, False),
    (["resize=0.75"], 1, False),
    (["resize=width:200,height:200,fit:cover"], 1, False),
    (["grayscale", "resize=0.5"], 1, True),
    (["threshold=adaptive_gaussian"], 1, True),
    (["crop=bottom:10", "resize=0.25"], 1, False),
    ([], 1, False),
])
def test_the_plan_picks_the_shortcut(ops, reduce, gray):
    plan = pipeline(*ops).plan_decode(2048, 1536)
    assert (plan.reduce, plan.gray) == (reduce, gray)


@pytest.mark.parametrize("ops", [["resize=0.25"], ["resize=0.5", "blur=3"], ["resize=300x"], ["grayscale"],
                                 ["threshold=otsu"], ["threshold=adaptive_gaussian"]])
def test_a_shortcut_gives_the_size_and_nearly_the_pixels_of_the_full_path(ops):
    data = images.jpeg_bytes("coffee.jpg")
    header = codec.probe(data, 10**8)
    p = pipeline(*ops)
    plan = p.plan_decode(header.width, header.height)
    assert plan.reduce > 1 or plan.gray
    (fast,) = run(codec.decode(data, header, plan.reduce, plan.gray), plan.operations, Context())
    (full,) = run(codec.decode(data, header), p.operations, Context())
    assert fast.image.shape == full.image.shape
    diff = np.abs(fast.image.astype(int) - full.image.astype(int))
    if "threshold" in ops[0]:  # a few pixels right at the threshold may flip
        assert (diff > 0).mean() < 0.02
    else:
        assert diff.mean() < 3


def test_redact_changes_the_array_in_place_only_when_the_pipeline_owns_it():
    img = cv2.imread(str(images.testimage("coffee.jpg")))
    before = img.copy()
    op = parse_operation("redact=0,0,50,50")
    (out,) = op.apply(Item(img), Context())
    assert np.array_equal(img, before) and out.image[:50, :50].max() == 0
    (out,) = op.apply(Item(img), Context(inplace=True))
    assert out.image is img and img[:50, :50].max() == 0
