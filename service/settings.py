"""Settings read from ``DESCENT_*`` environment variables (pydantic-settings)."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

MiB = 1024 * 1024


class Settings(BaseSettings):
    """Every knob of the service; the defaults give the embedded mode with a SQLite file under ``./data/``."""

    model_config = SettingsConfigDict(env_prefix="DESCENT_", extra="ignore", frozen=True)

    host: str = Field("127.0.0.1", description="Interface `descent serve` binds to.")
    port: int = Field(8000, ge=0, le=65535, description="TCP port `descent serve` listens on.")
    log_level: Literal["critical", "error", "warning", "info", "debug"] = Field(
        "info", description="Level of the service's logs; `info` writes one JSON line per request."
    )
    max_body_bytes: int = Field(
        64 * MiB, ge=1, description="Largest request body accepted; longer bodies get 413."
    )
    max_array_elements: int = Field(
        10_000_000, ge=1, description="Most numbers one array field of a request may hold; more gets 422."
    )
    database_url: str = Field(
        "sqlite:///./data/descent.db", description="SQLAlchemy URL of the store (SQLite file or PostgreSQL)."
    )
    runner: Literal["embedded", "celery"] = Field(
        "embedded",
        description="Where training jobs run: `embedded`, a pool of worker processes beside the API; "
        "`celery`, Celery workers (`descent worker`) behind the broker.",
    )
    broker_url: str = Field(
        "redis://127.0.0.1:6379/0", description="Celery broker URL, used by the distributed runner."
    )
    workers: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        ge=0,
        description="Worker processes of the embedded runner (default: the number of CPUs; "
        "0 runs no jobs in this process, leaving them queued).",
    )
    compute_threads: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        ge=1,
        description="Large compute requests run in worker threads, at most this many at once.",
    )
    max_queued_jobs: int = Field(100, ge=1, description="Queued jobs allowed at once; more gets 429.")
    max_dataset_rows: int = Field(1_000_000, ge=1, description="Most samples a dataset may hold.")
    max_dataset_features: int = Field(10_000, ge=1, description="Most features a dataset may hold.")
    max_dataset_elements: int = Field(
        50_000_000, ge=1, description="Most numbers (samples × features) a dataset may hold."
    )
    progress_interval_s: float = Field(
        0.5, gt=0, description="A running job writes its progress and metrics at most this often."
    )
    checkpoint_interval_s: float = Field(
        5.0, gt=0, description="A running job writes a checkpoint at least this often (and at shutdown)."
    )
    heartbeat_timeout_s: float = Field(
        60.0, gt=0, description="A running job silent for this long is presumed lost and requeued."
    )
    shutdown_grace_s: float = Field(
        10.0, gt=0, description="On SIGTERM, how long running jobs get to checkpoint before workers end."
    )
    broker_visibility_timeout_s: int = Field(
        24 * 3600, ge=60, description="Celery/Redis visibility timeout; keep it above the longest job."
    )
    owner: str = Field("default", description="Owner recorded on every resource (until authentication).")
