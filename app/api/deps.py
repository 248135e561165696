"""Dependencies, declared once as Annotated aliases."""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ..engine import Engine


# async on purpose: FastAPI runs a plain ``def`` dependency in a worker thread, a hop per request.
async def get_engine(request: Request) -> Engine:
    return request.app.state.engine


EngineDep = Annotated[Engine, Depends(get_engine)]
