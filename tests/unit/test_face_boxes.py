"""Boxes found by ``faces`` follow the pixels through later geometric operations: the box
reported on an output always frames the same pixels in that output."""
from __future__ import annotations

import numpy as np
import pytest

from app.operations import Context, Item, parse_operation
from app.pipeline import run

BOX = (30, 20, 40, 25)  # x, y, width, height on a 160x100 image


def marked() -> np.ndarray:
    img = np.zeros((100, 160, 3), np.uint8)
    x, y, w, h = BOX
    img[y:y + h, x:x + w] = 255
    return img


def white_box(img: np.ndarray) -> tuple[int, int, int, int] | None:
    ys, xs = np.nonzero(img[..., 0] > 127)
    if not len(xs):
        return None
    return int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)


@pytest.mark.parametrize("ops", [
    ["rotate=90"], ["rotate=180"], ["rotate=270"], ["flip=horizontal"], ["flip=vertical"],
    ["crop=10,5,100,60"], ["crop=bottom:30,left:35"], ["resize=0.5"], ["resize=320x"],
    ["resize=width:80,height:80,fit:stretch"], ["rotate=90", "flip=vertical", "crop=top:10"],
])
def test_a_box_follows_its_pixels(ops):
    items = [Item(marked(), faces=[BOX])]
    for op in map(parse_operation, ops):
        items = [out for item in items for out in op.apply(item, Context())]
    (item,) = items
    assert item.faces == [white_box(item.image)]


def test_after_a_split_each_tile_reports_only_the_part_of_the_box_it_holds():
    items = [Item(marked(), faces=[BOX])]
    items = parse_operation("split=True").apply(items[0], Context())
    for item in items:
        found = white_box(item.image)
        assert item.faces == ([] if found is None else [found])
    assert [len(i.faces) for i in items] == [1, 0, 0, 0]


def test_a_box_cut_by_a_crop_is_clipped_and_one_cropped_away_is_dropped():
    (item,) = run(marked(), [parse_operation("crop=0,0,50,30")], Context())
    assert item.faces is None  # no faces operation ran: nothing is reported
    (item,) = parse_operation("crop=0,0,50,30").apply(Item(marked(), faces=[BOX]), Context())
    assert item.faces == [(30, 20, 20, 10)]
    (item,) = parse_operation("crop=100,50,60,50").apply(Item(marked(), faces=[BOX]), Context())
    assert item.faces == []
