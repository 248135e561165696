"""A running imgsrv: its settings, the engine (the worker pool), the state store, the planner.

The API's lifespan and the CLI each make one, and close it when they end.
"""
from __future__ import annotations

from collections.abc import Sequence

from .config import Settings
from .execute import Executor
from .execute.engine import Engine
from .state import Store
from .metrics import Metrics
from .operations import Operation
from .pipeline import Budget, Pipeline
from .plan import Planner, build_pipeline


class Service:
    def __init__(self, settings: Settings, executor: Executor | None = None):
        self.settings = settings
        self.store = Store(settings.state_dir)  # type: ignore[arg-type]
        try:
            self.engine = Engine(settings, Metrics(), executor)
        except BaseException:
            self.store.close()
            raise
        self.engine.metrics.bind(lambda: self.engine.pending, lambda: self.engine.executor.crashes,
                                 self.store.jobs_by_status)
        self.planner = Planner(str(settings.data_root), settings.max_pixels, self.store.expected,
                               output_root=str(settings.output_root), state_dir=str(settings.state_dir),
                               owned=self.store.owned, max_answer_bytes=settings.max_answer_bytes,
                               max_input_bytes=settings.max_input_bytes)

    def pipeline(self, operations: Sequence[Operation | None], metadata: str = "keep",
                 field: str = "operations") -> Pipeline:
        """A request's pipeline (see plan.build_pipeline), with this service's rendering settings."""
        s = self.settings
        return build_pipeline(operations, metadata, s.max_pixels, field, planes=s.jpeg_planes,
                              budget=Budget(s.max_output_pixels, s.max_work), max_outputs=s.max_outputs)  # type: ignore[arg-type]

    def close(self) -> None:
        self.engine.close()
        self.store.close()
