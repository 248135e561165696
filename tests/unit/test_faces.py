"""Face detection on real portraits, and what each action does to the pixels."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from app.imaging.faces import detect_faces
from app.operations import Context, parse_operation
from app.pipeline import run

from .conftest import load

PORTRAITS = ["astronaut.jpg", "grace_hopper.jpg"]


def faces_item(image, action: str, **params):
    [item] = run(image, [parse_operation({"op": "faces", "action": action, **params})], Context())
    return item


def box_mask(shape, boxes) -> np.ndarray:
    mask = np.zeros(shape[:2], bool)
    for x, y, w, h in boxes:
        mask[y:y + h, x:x + w] = True
    return mask


def assert_boxes_inside(boxes, image):
    h, w = image.shape[:2]
    for x, y, bw, bh in boxes:
        assert 0 <= x and 0 <= y and bw > 0 and bh > 0
        assert x + bw <= w and y + bh <= h


@pytest.mark.parametrize("name", PORTRAITS)
def test_detect_finds_a_face_inside_the_image_and_changes_no_pixel(name):
    image = load(name)
    item = faces_item(image, "detect")
    assert len(item.faces) >= 1
    assert_boxes_inside(item.faces, image)
    # a face is a sizeable square-ish box in the upper part of these portraits
    x, y, w, h = max(item.faces, key=lambda b: b[2] * b[3])
    assert w >= 60 and 0.8 <= w / h <= 1.25
    assert y + h / 2 < image.shape[0] * 0.6
    assert np.array_equal(item.image, image)


def test_no_face_on_a_photo_without_people():
    item = faces_item(load("coffee.jpg"), "blur")
    assert item.faces == []
    assert np.array_equal(item.image, load("coffee.jpg"))


@pytest.mark.parametrize("name", PORTRAITS)
@pytest.mark.parametrize("action", ["blur", "fill", "pixelate"])
def test_hiding_actions_change_pixels_only_inside_the_found_boxes(name, action):
    image = load(name)
    item = faces_item(image, action)
    assert item.faces
    mask = box_mask(image.shape, item.faces)
    changed = np.any(item.image != image, axis=2)
    assert changed.any()
    assert not (changed & ~mask).any()
    # and most of each box did change (the face is hidden, not touched up)
    assert changed[mask].mean() > 0.8


@pytest.mark.parametrize("name", PORTRAITS)
def test_fill_blacks_out_the_faces(name):
    image = load(name)
    item = faces_item(image, "fill")
    for x, y, w, h in item.faces:
        assert np.all(item.image[y:y + h, x:x + w] == 0)


def test_faces_on_a_grayscale_and_a_bgra_image():
    gray = cv2.cvtColor(load("astronaut.jpg"), cv2.COLOR_BGR2GRAY)
    item = faces_item(gray, "fill")
    assert item.faces and item.image.ndim == 2
    bgra = np.dstack([load("astronaut.jpg"), np.full((512, 512), 255, np.uint8)])
    item = faces_item(bgra, "blur")
    assert item.faces and item.image.shape == (512, 512, 4)
    assert np.array_equal(item.image[:, :, 3], bgra[:, :, 3])


def test_faces_on_a_large_image_are_found_in_its_own_coordinates():
    small = load("astronaut.jpg")
    big = cv2.resize(small, (1536, 1536), interpolation=cv2.INTER_CUBIC)  # 2.4 megapixels
    [small_face] = [b for b in detect_faces(small) if b[2] >= 60]
    big_faces = detect_faces(big)
    assert big_faces
    assert_boxes_inside(big_faces, big)
    x, y, w, h = max(big_faces, key=lambda b: b[2] * b[3])
    sx, sy, sw, sh = small_face
    # about three times the box on the small copy
    assert abs(x - 3 * sx) <= 0.15 * 3 * sw and abs(y - 3 * sy) <= 0.15 * 3 * sh
    assert 0.8 <= w / (3 * sw) <= 1.25


def test_faces_are_reported_on_every_tile_of_a_later_split_cut_to_the_tile():
    image = load("astronaut.jpg")
    [(x, y, w, h)] = faces_item(image, "detect").faces
    assert x < 256 < x + w and y + h <= 256  # the premise: the face crosses the two upper tiles
    items = run(image, [parse_operation("faces"), parse_operation("split=True")], Context())
    assert [it.faces for it in items] == [[(x, y, 256 - x, h)], [(0, y, x + w - 256, h)], [], []]


def test_faces_not_run_means_no_faces_reported():
    [item] = run(load("astronaut.jpg"), [parse_operation("blur=3")], Context())
    assert item.faces is None


def test_min_size_larger_than_the_face_finds_nothing():
    assert faces_item(load("astronaut.jpg"), "detect", min_size=400).faces == []
