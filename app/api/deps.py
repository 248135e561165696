"""Dependencies, declared once as Annotated aliases."""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ..config import Settings
from ..engine import Engine


def get_engine(request: Request) -> Engine:
    return request.app.state.engine


def get_app_settings(request: Request) -> Settings:
    return request.app.state.engine.settings


EngineDep = Annotated[Engine, Depends(get_engine)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
