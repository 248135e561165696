"""The budgets: what the plan refuses at once, what an image's size makes too much, and the
work each operation estimates for itself."""
from __future__ import annotations

import pytest

from app.errors import InvalidRequest
from app.operations import parse_operation
from app.pipeline import Budget, Pipeline
from app.plan import build_pipeline

BUDGET = Budget(max_output_pixels=10**8, max_work=5e10)


def pipeline(*ops: str, budget: Budget | None = BUDGET, max_outputs: int | None = 4096) -> Pipeline:
    return build_pipeline([parse_operation(op) for op in ops], "keep", 10**8, budget=budget, max_outputs=max_outputs)


@pytest.mark.parametrize("ops, field, words", [
    (["split=64x64", "split=8x8"], "operations[1]", "IMGSRV_MAX_OUTPUTS"),
    (["grayscale", "split=64x64", "resize=width:1000,height:1000,fit:stretch"], "operations[2]",
     "IMGSRV_MAX_OUTPUT_PIXELS"),
    (["blur=kernel:0,sigma:100"] * 100, "operations[41]", "IMGSRV_MAX_WORK"),
])
def test_the_plan_refuses_what_no_image_could_afford(ops, field, words):
    with pytest.raises(InvalidRequest) as info:
        pipeline(*ops)
    assert info.value.field == field and words in info.value.message


def test_what_depends_on_the_image_is_judged_by_its_size():
    tiles = pipeline("split=64x64", "resize=16")
    assert tiles.refusal(512, 512) is None  # 67 megapixels of tiles
    assert "IMGSRV_MAX_OUTPUT_PIXELS" in tiles.refusal(2000, 1500)  # 768 megapixels
    blur = pipeline("blur=kernel:0,sigma:100")
    assert blur.refusal(2000, 2000) is None  # about 3 s
    assert "IMGSRV_MAX_WORK" in blur.refusal(8000, 6000)
    assert pipeline("blur=kernel:0,sigma:100", budget=None).refusal(8000, 6000) is None


def test_each_operation_estimates_its_own_work():
    w, h = 4000, 4000
    one_pass = float(w * h)
    assert parse_operation("grayscale").work(w, h) == one_pass
    assert parse_operation("blur=kernel:0,sigma:100").work(w, h) == one_pass * 2 * 601
    assert parse_operation("crop=0,0,10,10").work(w, h) == 0  # a view
    big_box = parse_operation("redact=x:0,y:0,width:4000,height:4000,mode:blur").work(w, h)
    assert big_box == one_pass * 2 * 1001, "a blurred box costs its Gaussian of a quarter of its side"
    assert parse_operation("redact=0,0,4000,4000").work(w, h) == one_pass  # a fill
    coarse = parse_operation("faces=action:detect,scale_factor:1.5").work(w, h)
    fine = parse_operation("faces=action:detect,scale_factor:1.01").work(w, h)
    assert fine > 10 * coarse, "a finer pyramid has many more levels"


def test_sizes_follow_the_operations():
    p = pipeline("rotate=90", "split=2x3", "resize=0.5")
    estimate = p.estimate(600, 400)
    assert estimate.outputs == 6
    assert estimate.pixels == 400 * 600  # the largest step: the image itself
    assert pipeline("split=2x3", "resize=2").estimate(600, 400).pixels == 4 * 600 * 400  # the tiles, enlarged


def test_uploads_held_in_memory_are_bounded():
    from app.config import Settings
    from app.errors import QueueFull
    from app.execute.engine import Engine

    class Idle:
        workers, crashes = 2, 0

        def warm_up(self):
            pass

    engine = Engine(Settings(executor="thread", max_upload_queue_bytes=100), executor=Idle())  # type: ignore[arg-type]
    try:
        engine.hold_upload(60)
        with pytest.raises(QueueFull, match="IMGSRV_MAX_UPLOAD_QUEUE_BYTES"):
            engine.hold_upload(60)
        engine.drop_upload(60)
        engine.hold_upload(60)
    finally:
        engine._io.shutdown()
