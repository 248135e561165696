"""Settings, read from the environment with the ``IMGSRV_`` prefix."""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of the service. Construct directly in tests, from the environment otherwise."""

    model_config = SettingsConfigDict(env_prefix="IMGSRV_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8888, ge=0, le=65535)
    data_root: Path = Field(default_factory=Path.cwd, description="every request path resolves under it")
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, le=256)
    executor: str = Field("process", description="process, thread, dask://HOST:PORT or tls://HOST:PORT (a Dask "
                                                 "scheduler over TLS, with Dask's certificate configuration)")
    max_pixels: int = Field(100_000_000, ge=1)
    max_images_per_request: int = Field(1000, ge=1)
    max_upload_bytes: int = Field(52_428_800, ge=1)
    max_upload_queue_bytes: int = Field(268_435_456, ge=1, description="uploads held in memory at once (read, or "
                                                                       "waiting for a worker); more: 429")
    max_queue: int = Field(10_000, ge=0)
    max_outputs: int = Field(4096, ge=1, description="outputs one image may fan out to (the product of its splits)")
    max_request_outputs: int = Field(16384, ge=1, description="outputs of one /process or /plan request; more: "
                                                              "413 (use a job)")
    max_output_pixels: int | None = Field(None, ge=1, description="pixels of all of one image's images together "
                                                                   "at any step; default IMGSRV_MAX_PIXELS")
    max_work: float = Field(5e10, gt=0, description="estimated pixel reads of one image's operations "
                                                    "(about 35 s of one core)")
    max_body_bytes: int = Field(8_388_608, ge=1, description="larger JSON bodies get 413 before they are read whole")
    max_answer_bytes: int = Field(268_435_456, ge=1, description="largest /render answer (an image or a zip)")
    max_input_bytes: int = Field(536_870_912, ge=1, description="largest input file read from the disk; a larger "
                                                                "one is that image's too_large")
    max_jobs: int = Field(2, ge=1, description="jobs running at once; the rest wait as queued")
    # access
    api_keys: str | None = Field(None, description="name:secret,name:secret: every route but the open ones "
                                                  "needs a key")
    api_keys_file: Path | None = Field(None, description="the same pairs, one a line (re-read on SIGHUP)")
    admin_keys: str | None = Field(None, description="key names that see and cancel every job")
    allow_anonymous: bool = Field(False, description="serve a non-loopback address without keys")
    allowed_hosts: str | None = Field(None, description="Host values served (comma-separated; * any); default: "
                                                       "the loopback names and the bound address")
    job_retention_days: float = Field(30.0, ge=0, description="finished jobs' records are forgotten after this "
                                                              "many days (0: kept until deleted)")
    state_dir: Path | None = Field(None, description="job database and manifest folder, never an input or an "
                                                     "output; default DATA_ROOT/.imgsrv")
    output_root: Path | None = Field(None, description="every output resolves under it; default DATA_ROOT")
    task_timeout: float | None = Field(300.0, gt=0, description="seconds one image may take before its worker is replaced")
    log_level: str = "info"
    jpeg_planes: bool = Field(True, description="JPEG-to-JPEG crops and fill redactions run on the YCbCr planes "
                                                "when libturbojpeg is installed (imaging.planar)")
    # uvicorn's protection against slow or too many clients
    limit_concurrency: int | None = Field(None, ge=1, description="connections at once; more get 503 at once")
    timeout_keep_alive: float = Field(5.0, gt=0, description="seconds an idle keep-alive connection is kept")
    graceful_timeout: float = Field(30.0, ge=0, description="seconds requests in flight get to finish at SIGTERM")

    @field_validator("executor")
    @classmethod
    def _known_executor(cls, v: str) -> str:
        if v in ("process", "thread") or v.startswith(("dask://", "tls://")):
            return v
        raise ValueError("executor must be 'process', 'thread', 'dask://HOST:PORT' or 'tls://HOST:PORT'")

    @model_validator(mode="after")
    def _resolve_paths(self) -> "Settings":
        self.data_root = Path(os.path.realpath(self.data_root))
        self.output_root = Path(os.path.realpath(self.output_root or self.data_root))
        self.state_dir = Path(os.path.realpath(self.state_dir or self.data_root / ".imgsrv"))
        if self.max_output_pixels is None:
            self.max_output_pixels = self.max_pixels
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
