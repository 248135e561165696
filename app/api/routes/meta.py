"""GET /health and GET /operations."""
from __future__ import annotations

from fastapi import APIRouter

from ... import __version__
from ...operations import describe_operations
from ..deps import ServiceDep
from ..schemas import Health, OperationsResponse

router = APIRouter(tags=["service"])


@router.get("/health", response_model=Health)
async def health(service: ServiceDep) -> Health:
    """Liveness, the executor in use and the size of its pool."""
    return Health(status="ok", executor=service.settings.executor, workers=service.engine.executor.workers,
                  version=__version__)


@router.get("/operations", response_model=OperationsResponse, response_model_by_alias=True)
async def operations() -> dict:
    """Every operation with a description, string-form examples and its parameters' JSON schema."""
    return {"operations": describe_operations()}
