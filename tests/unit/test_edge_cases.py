"""Edge cases of the operations on real pixels: odd sizes, tiny images, boxes at and beyond
the edges, size limits, and what each filter must output."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from app.errors import InvalidOperation, TooLarge
from app.operations import Context, parse_operation
from app.pipeline import run


def apply(image, *ops, ctx: Context | None = None):
    """Run string/object operations through the pipeline; the images of the items."""
    return [item.image for item in run(image, [parse_operation(op) for op in ops], ctx or Context())]


def one(image, *ops, ctx: Context | None = None):
    [out] = apply(image, *ops, ctx=ctx)
    return out


@pytest.fixture(scope="module")
def odd(astronaut):
    """A 101 wide, 77 high piece of a real photo."""
    return np.ascontiguousarray(astronaut[200:277, 150:251])


@pytest.fixture(scope="module")
def bgra(chelsea):
    """The chelsea photo with an alpha ramp (0 at the left edge, 255 at the right)."""
    h, w = chelsea.shape[:2]
    alpha = np.tile(np.linspace(0, 255, w).astype(np.uint8), (h, 1))
    return np.dstack([chelsea, alpha])


# ---------------------------------------------------------------- split


@pytest.mark.parametrize("rows,cols", [(2, 2), (3, 4), (7, 5), (1, 3), (64, 1), (4, 64)])
def test_split_of_an_odd_size_covers_the_image_exactly(odd, rows, cols):
    tiles = apply(odd, {"op": "split", "rows": rows, "cols": cols})
    assert len(tiles) == rows * cols
    grid = [tiles[r * cols:(r + 1) * cols] for r in range(rows)]  # row-major
    # widths in every row add up to 101, heights in every column to 77
    for row in grid:
        assert sum(t.shape[1] for t in row) == 101
        assert len({t.shape[0] for t in row}) == 1
    for c in range(cols):
        assert sum(grid[r][c].shape[0] for r in range(rows)) == 77
    # tiles are as even as possible
    assert max(t.shape[1] for t in tiles) - min(t.shape[1] for t in tiles) <= 1
    assert max(t.shape[0] for t in tiles) - min(t.shape[0] for t in tiles) <= 1
    # put back together in row-major order they are the image
    assert np.array_equal(np.vstack([np.hstack(row) for row in grid]), odd)


def test_quadrants_are_top_left_top_right_bottom_left_bottom_right(odd):
    tl, tr, bl, br = apply(odd, "splitQuadrants=True")
    assert tl.shape[:2] == (38, 50) and br.shape[:2] == (39, 51)
    assert np.array_equal(tl, odd[:38, :50])
    assert np.array_equal(tr, odd[:38, 50:])
    assert np.array_equal(bl, odd[38:, :50])
    assert np.array_equal(br, odd[38:, 50:])


def test_split_suffixes_count_tiles_row_major_and_nest(odd):
    items = run(odd, [parse_operation("split=True"), parse_operation("split=1x3")], Context())
    assert [it.suffix for it in items] == [(i, j) for i in range(4) for j in range(3)]
    # the second tile of the second quadrant is the matching region of the image
    assert np.array_equal(items[4].image, odd[:38, 50:][:, 17:34])


@pytest.mark.parametrize("overlap", [1, 10, 7])
def test_split_with_overlap_neighbours_share_exactly_overlap_pixels(odd, overlap):
    rows, cols = 2, 3
    tiles = apply(odd, {"op": "split", "rows": rows, "cols": cols, "overlap": overlap})
    spans_x, spans_y = [], []
    for i, t in enumerate(tiles):
        # find where each tile sits in the image: tiles are exact copies of a region
        r, c = divmod(i, cols)
        x0 = sum(tiles[c2].shape[1] for c2 in range(c)) - overlap * c
        y0 = sum(tiles[r2 * cols].shape[0] for r2 in range(r)) - overlap * r
        h, w = t.shape[:2]
        assert np.array_equal(t, odd[y0:y0 + h, x0:x0 + w]), i
        if r == 0:
            spans_x.append((x0, x0 + w))
        if c == 0:
            spans_y.append((y0, y0 + h))
    # the spans start at 0, end at the edge and neighbours share exactly `overlap` pixels
    assert spans_x[0][0] == 0 and spans_x[-1][1] == 101
    assert spans_y[0][0] == 0 and spans_y[-1][1] == 77
    for (a0, a1), (b0, b1) in zip(spans_x, spans_x[1:]):
        assert a1 - b0 == overlap
    for (a0, a1), (b0, b1) in zip(spans_y, spans_y[1:]):
        assert a1 - b0 == overlap
    # shared columns hold the same pixels in both tiles
    assert np.array_equal(tiles[0][:, -overlap:], tiles[1][:, :overlap])
    assert np.array_equal(tiles[0][-overlap:, :], tiles[cols][:overlap, :])


def test_split_overlap_as_large_as_a_tile_is_refused(odd):
    with pytest.raises(InvalidOperation) as exc:
        apply(odd, {"op": "split", "rows": 2, "cols": 2, "overlap": 38})
    assert exc.value.code == "invalid_operation"


def test_split_into_more_rows_than_pixels_is_refused(odd):
    with pytest.raises(InvalidOperation):
        apply(odd, {"op": "split", "rows": 64, "cols": 1}, {"op": "split", "rows": 2, "cols": 1})


def test_split_1x1_is_the_whole_image_without_suffix(odd):
    [item] = run(odd, [parse_operation("split=1x1")], Context())
    assert item.suffix == () and np.array_equal(item.image, odd)


# ---------------------------------------------------------------- 1x1 images

# (operation, what becomes of one pixel P, whose luma is G): "P" repeated to a shape, or a value
SAME, BLACK = "P", (0, 0, 0)
ONE_PIXEL_OPS = [
    ("resize=0.5", (1, 1), SAME), ("resize=2", (2, 2), SAME), ("resize=width:10", (10, 10), SAME),
    ("resize=20x10", (10, 10), SAME), ("resize=width:20,height:10,fit:cover", (10, 20), SAME),
    ("resize=width:20,height:10,fit:stretch", (10, 20), SAME),
    ("blur=5", (1, 1), SAME), ("blur=kernel:0,sigma:5", (1, 1), SAME), ("grayscale", (1, 1), "G"),
    ("threshold=127", (1, 1), 0),  # G = 49: below 127
    # a flat image: Otsu's threshold falls at 0 and the adaptive ones at G - C, so the pixel is above it
    ("threshold=otsu", (1, 1), 255), ("threshold=adaptive_mean", (1, 1), 255),
    ("threshold=adaptive_gaussian", (1, 1), 255), ("crop=0,0,1,1", (1, 1), SAME), ("crop=0,0,50,50", (1, 1), SAME),
    ("crop=-1,-1,1,1", (1, 1), SAME), ("redact=0,0,1,1", (1, 1), BLACK),
    ("redact=x:0,y:0,width:1,height:1,mode:blur", (1, 1), SAME),
    ("redact=x:0,y:0,width:1,height:1,mode:pixelate", (1, 1), SAME), ("rotate=90", (1, 1), SAME),
    ("rotate=270", (1, 1), SAME), ("flip=horizontal", (1, 1), SAME), ("faces", (1, 1), SAME),
    ("faces=blur", (1, 1), SAME), ("encode=quality:10", (1, 1), SAME), ("split=1x1", (1, 1), SAME),
]


@pytest.mark.parametrize("op,size,becomes", ONE_PIXEL_OPS, ids=[o for o, _, _ in ONE_PIXEL_OPS])
def test_one_pixel_image_through_every_operation(astronaut, op, size, becomes):
    pixel = np.ascontiguousarray(astronaut[100:101, 250:251])
    b, g, r = (int(v) for v in pixel[0, 0])
    luma = round(0.114 * b + 0.587 * g + 0.299 * r)
    assert (b, g, r, luma) == (28, 42, 70, 49)  # the premise of the rows above
    out = one(pixel, op)
    assert out.dtype == np.uint8
    if becomes == SAME:
        expected = np.broadcast_to(pixel, (*size, 3))
    elif becomes == "G":
        expected = np.full(size, luma, np.uint8)
    elif isinstance(becomes, tuple):
        expected = np.broadcast_to(np.array(becomes, np.uint8), (*size, 3))
    else:
        expected = np.full(size, becomes, np.uint8)
    assert out.shape == expected.shape and np.array_equal(out, expected), f"{op}: {out.ravel()[:6]}"


def test_one_pixel_image_cannot_be_split_in_quadrants(astronaut):
    with pytest.raises(InvalidOperation):
        apply(np.ascontiguousarray(astronaut[:1, :1]), "split=True")


# ---------------------------------------------------------------- crop


def test_crop_box_partly_outside_is_clipped(chelsea):
    out = one(chelsea, "crop=400,250,200,200")
    assert out.shape == (50, 51, 3)
    assert np.array_equal(out, chelsea[250:, 400:])


@pytest.mark.parametrize("box", ["crop=451,0,10,10", "crop=0,300,10,10", "crop=500,500,10,10",
                                 "crop=-1000,0,100,100", "crop=x:0,y:-900,width:10,height:10"])
def test_crop_box_wholly_outside_is_an_invalid_operation(chelsea, box):
    with pytest.raises(InvalidOperation) as exc:
        apply(chelsea, box)
    assert exc.value.code == "invalid_operation"
    assert "451x300" in exc.value.message


def test_crop_negative_x_y_count_from_the_right_and_bottom(chelsea):
    out = one(chelsea, "crop=-100,-50,100,50")
    assert np.array_equal(out, chelsea[-50:, -100:])
    # a box reaching beyond the right edge from a negative x is clipped too
    out = one(chelsea, "crop=-100,0,300,10")
    assert np.array_equal(out, chelsea[:10, -100:])


def test_crop_margins_cut_each_side(chelsea):
    out = one(chelsea, "crop=top:10,bottom:20,left:30,right:40")
    assert np.array_equal(out, chelsea[10:280, 30:411])
    assert np.array_equal(one(chelsea, "crop=bottom:100"), chelsea[:200])


@pytest.mark.parametrize("margins", ["crop=top:150,bottom:150", "crop=left:451", "crop=right:1000"])
def test_crop_margins_that_leave_nothing_are_an_invalid_operation(chelsea, margins):
    with pytest.raises(InvalidOperation):
        apply(chelsea, margins)


# ---------------------------------------------------------------- redact


def test_redact_box_partly_outside_is_clipped(chelsea):
    out = one(chelsea, "redact=-50,-50,100,100")
    assert np.all(out[-50:, -50:] == 0)
    mask = np.ones(chelsea.shape[:2], bool)
    mask[-50:, -50:] = False
    assert np.array_equal(out[mask], chelsea[mask])


@pytest.mark.parametrize("box", ["redact=451,0,10,10", "redact=0,300,10,10", "redact=-1000,-1000,10,10"])
def test_redact_box_wholly_outside_leaves_the_image_unchanged(chelsea, box):
    assert np.array_equal(one(chelsea, box), chelsea)


def test_redact_the_py_image_server_example_blacks_out_the_bottom_left(chelsea):
    out = one(chelsea, "redact=0,-100,200,100")
    assert np.all(out[200:, :200] == 0)
    assert np.array_equal(out[:200], chelsea[:200])
    assert np.array_equal(out[:, 200:], chelsea[:, 200:])


@pytest.mark.parametrize("mode", ["blur", "pixelate"])
def test_redact_blur_and_pixelate_change_only_the_box_and_hide_detail(chelsea, mode):
    out = one(chelsea, {"op": "redact", "x": 100, "y": 50, "width": 120, "height": 80, "mode": mode})
    inside, before = out[50:130, 100:220].astype(float), chelsea[50:130, 100:220].astype(float)
    mask = np.ones(chelsea.shape[:2], bool)
    mask[50:130, 100:220] = False
    assert np.array_equal(out[mask], chelsea[mask])
    # detail (high-frequency energy) is mostly gone
    lap_before = np.abs(cv2.Laplacian(before, cv2.CV_64F)).mean()
    lap_after = np.abs(cv2.Laplacian(inside, cv2.CV_64F)).mean()
    assert lap_after < lap_before / 2


def test_redact_fill_colour_on_bgr_gray_and_bgra(chelsea, camera, bgra):
    op = {"op": "redact", "x": 5, "y": 5, "width": 10, "height": 10, "color": [0, 0, 255]}  # red
    out = one(chelsea, op)
    assert np.all(out[5:15, 5:15] == (0, 0, 255))
    out = one(camera, op)
    assert out.ndim == 2
    assert np.all(out[5:15, 5:15] == 76)  # luminance of pure red: 0.299 * 255
    out = one(bgra, op)
    assert out.shape[2] == 4
    assert np.all(out[5:15, 5:15] == (0, 0, 255, 255))  # opaque red
    assert np.array_equal(out[20:, :], bgra[20:, :])


# ---------------------------------------------------------------- resize


def test_resize_width_only_keeps_the_aspect_ratio(chelsea):
    out = one(chelsea, "resize=200x")
    assert out.shape[1] == 200 and abs(out.shape[0] - 300 * 200 / 451) <= 1
    out = one(chelsea, {"op": "resize", "height": 150})
    assert out.shape[0] == 150 and abs(out.shape[1] - 451 / 2) <= 1


@pytest.mark.parametrize("fit,size", [("contain", (200, 133)), ("cover", (200, 200)), ("stretch", (200, 200))])
def test_resize_fit_sizes(chelsea, fit, size):
    out = one(chelsea, {"op": "resize", "width": 200, "height": 200, "fit": fit})
    assert (out.shape[1], abs(out.shape[0] - size[1]) <= 1) == (size[0], True)


def test_resize_contain_never_exceeds_the_box_and_touches_one_side(chelsea):
    for w, h in [(100, 100), (1000, 100), (100, 1000), (452, 301)]:
        out = one(chelsea, {"op": "resize", "width": w, "height": h})
        oh, ow = out.shape[:2]
        assert ow <= w and oh <= h
        assert ow == w or oh == h


def test_resize_cover_centre_crops_without_distortion(chelsea):
    cover = one(chelsea, "resize=width:200,height:200,fit:cover").astype(float)
    stretch = one(chelsea, "resize=width:200,height:200,fit:stretch").astype(float)
    centre = cv2.resize(chelsea[:, 75:375], (200, 200), interpolation=cv2.INTER_AREA).astype(float)
    assert np.abs(cover - centre).mean() < 3
    assert np.abs(stretch - centre).mean() > 3 * np.abs(cover - centre).mean()


def test_resize_scale_halves_and_doubles(chelsea):
    half = one(chelsea, "resize=0.5")
    assert half.shape == (150, 226, 3)
    # a downscale averages: the mean colour is kept
    assert np.allclose(half.mean(axis=(0, 1)), chelsea.mean(axis=(0, 1)), atol=1.5)
    assert one(chelsea, "resize=2").shape == (600, 902, 3)


def test_resize_over_the_pixel_budget_raises_too_large(chelsea):
    with pytest.raises(TooLarge) as exc:
        apply(chelsea, "resize=16", ctx=Context(max_pixels=10_000_000))
    assert exc.value.code == "too_large"
    with pytest.raises(TooLarge):
        apply(chelsea, "resize=width:5000,height:5000,fit:stretch", ctx=Context(max_pixels=10_000_000))
    # exactly at the budget is fine
    out = one(chelsea, "resize=width:400,height:250,fit:stretch", ctx=Context(max_pixels=100_000))
    assert out.shape[:2] == (250, 400)


def test_resize_after_split_checks_each_tile(chelsea):
    tiles = apply(chelsea, "split=True", "resize=0.5")
    assert [t.shape[:2] for t in tiles] == [(75, 112), (75, 113), (75, 112), (75, 113)]


# ---------------------------------------------------------------- rotate, flip


def test_rotate_90_moves_the_top_left_pixel_to_the_top_right(chelsea):
    out = one(chelsea, "rotate=90")
    assert out.shape == (451, 300, 3)
    assert np.array_equal(out[0, -1], chelsea[0, 0])
    assert np.array_equal(out[-1, -1], chelsea[0, -1])  # top-right goes to bottom-right
    assert np.array_equal(out[0, 0], chelsea[-1, 0])  # bottom-left comes to the top-left


def test_rotate_180_and_270(chelsea):
    r180 = one(chelsea, "rotate=180")
    assert np.array_equal(r180, chelsea[::-1, ::-1])
    r270 = one(chelsea, "rotate=270")
    assert np.array_equal(r270[-1, 0], chelsea[0, 0])  # top-left goes to bottom-left
    assert np.array_equal(one(chelsea, "rotate=90", "rotate=270"), chelsea)
    assert np.array_equal(one(chelsea, "rotate=90", "rotate=90", "rotate=90", "rotate=90"), chelsea)


def test_flip(chelsea):
    assert np.array_equal(one(chelsea, "flip=horizontal"), chelsea[:, ::-1])
    assert np.array_equal(one(chelsea, "flip=vertical"), chelsea[::-1])


# ---------------------------------------------------------------- threshold, grayscale, blur

METHODS = ["binary", "binary_inv", "otsu", "adaptive_mean", "adaptive_gaussian"]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("kind", ["bgr", "gray", "bgra"])
def test_threshold_outputs_only_0_and_255_in_one_channel(chelsea, camera, bgra, method, kind):
    image = {"bgr": chelsea, "gray": camera, "bgra": bgra}[kind]
    out = one(image, {"op": "threshold", "method": method})
    assert out.ndim == 2 and out.shape == image.shape[:2] and out.dtype == np.uint8
    assert set(np.unique(out).tolist()) == {0, 255}


def test_threshold_binary_compares_luminance_with_value(chelsea):
    gray = cv2.cvtColor(chelsea, cv2.COLOR_BGR2GRAY)
    for value in (50, 127, 200):
        out = one(chelsea, {"op": "threshold", "value": value})
        assert np.array_equal(out == 255, gray > value)
        inv = one(chelsea, {"op": "threshold", "method": "binary_inv", "value": value})
        assert np.array_equal(inv, 255 - out)


def test_threshold_otsu_ignores_value_and_splits_the_histogram(camera):
    a = one(camera, {"op": "threshold", "method": "otsu", "value": 10})
    b = one(camera, {"op": "threshold", "method": "otsu", "value": 240})
    assert np.array_equal(a, b)
    assert 0.2 < (a == 255).mean() < 0.8


def test_grayscale_of_bgr_and_gray(chelsea, camera):
    out = one(chelsea, "grayscale")
    assert out.shape == (300, 451)
    assert np.array_equal(out, cv2.cvtColor(chelsea, cv2.COLOR_BGR2GRAY))
    assert np.array_equal(one(camera, "grayscale"), camera)


def test_grayscale_keeps_alpha(bgra):
    out = one(bgra, "grayscale")
    assert out.shape == bgra.shape
    assert np.array_equal(out[:, :, 3], bgra[:, :, 3])
    assert np.array_equal(out[:, :, 0], out[:, :, 1]) and np.array_equal(out[:, :, 1], out[:, :, 2])
    assert np.array_equal(out[:, :, 0], cv2.cvtColor(bgra[:, :, :3], cv2.COLOR_BGR2GRAY))


def test_blur_smooths_and_kernel_1_changes_nothing(chelsea):
    assert np.array_equal(one(chelsea, "blur=1"), chelsea)
    light, strong = one(chelsea, "blur=3"), one(chelsea, "blur=15")
    def detail(img):
        return np.abs(cv2.Laplacian(img.astype(float), cv2.CV_64F)).mean()
    assert detail(strong) < detail(light) < detail(chelsea)
    assert np.allclose(strong.mean(axis=(0, 1)), chelsea.mean(axis=(0, 1)), atol=1.0)


def test_blur_keeps_alpha_layout(bgra, camera):
    assert one(bgra, "blur=5").shape == bgra.shape
    assert one(camera, "blur=5").shape == camera.shape
