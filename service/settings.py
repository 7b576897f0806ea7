"""Settings read from ``DESCENT_*`` environment variables (pydantic-settings)."""

from __future__ import annotations

import os
import re
from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MiB = 1024 * 1024
# A rate limit: requests per unit of time, "20/second", "600/minute".
RATE_PATTERN = re.compile(r"[1-9][0-9]*/(second|minute|hour|day)")


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
    max_job_memory_mb: float = Field(
        4096,
        gt=0,
        description="Largest estimated peak memory (MiB) of one training job (data, parameters, optimizer "
        "state, one batch's activations); a job estimated above it gets 413 before it is queued.",
    )
    max_compute_memory_mb: float = Field(
        1024,
        gt=0,
        description="Largest estimated memory (MiB) of one forward, gradients or predict request; "
        "more gets 413.",
    )
    max_response_mb: float = Field(
        256,
        gt=0,
        description="Largest estimated JSON response (MiB) of forward, gradients, predict or an activation "
        "curve; more gets 413.",
    )
    heavy_lane_mode: Literal["threads", "processes"] = Field(
        "processes",
        description="Where heavy compute requests run: `processes` (raw body in, encoded response out, at a "
        "lower priority than the API process; no GIL shared with the event loop) or `threads` of the API "
        "process.",
    )
    heavy_lane_queue: int = Field(
        4, ge=0, description="Heavy requests that may wait for a slot; more get 503 with Retry-After."
    )
    heavy_lane_wait_s: float = Field(
        5.0,
        gt=0,
        description="How long a heavy request waits for a slot before it gets 503 with Retry-After.",
    )
    idempotency_wait_s: float = Field(
        10.0,
        gt=0,
        description="How long a request waits for a concurrent one with the same Idempotency-Key to finish "
        "creating, before it gets 409 (in progress, retry).",
    )
    event_feed: Literal["shared", "poll"] = Field(
        "shared",
        description="How event streams follow their jobs: `shared`, one reader per process for every stream, "
        "woken by the store (PostgreSQL LISTEN/NOTIFY, SQLite's data version); `poll`, each stream polls "
        "the store every 0.2 s (the former way, kept for comparison).",
    )
    max_queued_jobs: int = Field(100, ge=1, description="Queued jobs allowed at once; more gets 429.")
    max_dataset_rows: int = Field(1_000_000, ge=1, description="Most samples a dataset may hold.")
    max_dataset_features: int = Field(10_000, ge=1, description="Most features a dataset may hold.")
    max_labels_kb: int = Field(
        64,
        ge=1,
        description="Largest total size (KiB, UTF-8) of a dataset's or model's distinct class names, which "
        "every list of datasets or models repeats; more gets 413. Each name has at most 256 characters.",
    )
    max_dataset_elements: int = Field(
        50_000_000, ge=1, description="Most numbers (samples × features) a dataset may hold."
    )
    progress_interval_s: float = Field(
        0.5, gt=0, description="A running job writes its progress and metrics at most this often."
    )
    checkpoint_interval_s: float = Field(
        5.0, gt=0, description="A running job writes a checkpoint at least this often (and at shutdown)."
    )
    heartbeat_interval_s: float = Field(
        1.0,
        gt=0,
        description="A running job's worker writes a heartbeat this often, from a thread of its own, "
        "however long an epoch or a mini-batch takes.",
    )
    heartbeat_timeout_s: float = Field(
        10.0,
        gt=0,
        description="A running job with no heartbeat for this long is presumed lost (its worker died) and "
        "requeued; at least 3 heartbeat intervals.",
    )
    redispatch_after_s: float = Field(
        10.0,
        gt=0,
        description="Distributed runner: a queued job still unclaimed this long after it was last sent to "
        "the broker is sent again, if the broker holds fewer messages than there are queued jobs.",
    )
    worker_memory_mb: int = Field(
        4096,
        ge=0,
        description="Memory (MiB of address space) one job may allocate in a worker process, beyond the "
        "worker's own footprint; a job that needs more ends `failed` with `resource_exhausted` and the "
        "worker is replaced. 0: no cap.",
    )
    shutdown_grace_s: float = Field(
        10.0, gt=0, description="On SIGTERM, how long running jobs get to checkpoint before workers end."
    )
    broker_visibility_timeout_s: int = Field(
        24 * 3600, ge=60, description="Celery/Redis visibility timeout; keep it above the longest job."
    )
    min_free_mb: float = Field(
        64,
        ge=0,
        description="Free space (MiB) the SQLite store's disk must keep; below it /readyz answers 503 "
        "naming the disk as full.",
    )
    owner: str = Field(
        "default", description="Owner of every resource when DESCENT_AUTH=none (the single user)."
    )
    auth: Literal["none", "keys"] = Field(
        "none",
        description="`none`: no authentication, every request acts as DESCENT_OWNER (allowed only on a "
        "loopback address); `keys`: every /v1 request needs `Authorization: Bearer <API key>`.",
    )
    bootstrap_key: SecretStr | None = Field(
        None,
        description="An admin API key (`dsk_...`, e.g. from `descent keys generate`) recorded at start-up "
        "for owner `admin` when the store lacks it: the first key of a fresh deployment.",
    )
    key_cache_s: float = Field(
        2.0,
        ge=0,
        description="How long an API process trusts a key it has checked before it reads it again: a revoked "
        "key stops working within this time. 0: read the store on every request.",
    )
    metrics_auth: bool = Field(False, description="With DESCENT_AUTH=keys, /metrics needs an admin key too.")
    cors_origins: str = Field(
        "",
        description="Comma-separated origins allowed to call the API from a browser (CORS); empty: CORS "
        "stays off and browsers allow only same-origin calls.",
    )
    quota_jobs: int = Field(
        50, ge=0, description="Queued and running (and cancelling) jobs one owner may have at once."
    )
    quota_stored_mb: float = Field(
        4096, ge=0, description="Stored data (datasets and models, MiB) one owner may hold."
    )
    quota_datasets: int = Field(1000, ge=0, description="Datasets one owner may hold.")
    quota_models: int = Field(1000, ge=0, description="Models one owner may hold.")
    rate_limit: str = Field(
        "1200/minute",
        description="How fast an API key's token bucket refills, as `N/second|minute|hour|day` (e.g. "
        "`20/second`); a request takes a token, and one that finds none gets 429 with Retry-After. Empty: "
        "no limit. Only with DESCENT_AUTH=keys.",
    )
    rate_limit_burst: int = Field(
        0,
        ge=0,
        description="Tokens an API key's bucket holds: the requests it may make at once. 0: the N of "
        "DESCENT_RATE_LIMIT.",
    )
    auth_failure_rate_limit: str = Field(
        "20/minute",
        description="How fast a client address's bucket of failed authentications (401: no key, or a "
        "malformed, unknown or revoked one) refills; once it is empty, that address's requests with a key "
        "this process has not checked recently get 429 before the key is looked at. Empty: no limit. Only "
        "with DESCENT_AUTH=keys.",
    )
    auth_failure_burst: int = Field(
        0, ge=0, description="Failed authentications a client address may make at once. 0: the N of the rate."
    )
    rate_limit_url: str = Field(
        "",
        description="Where the token buckets live: `memory://` (this process) or a `redis://` URL shared "
        "by every API replica; empty: the broker's Redis with the Celery runner, else memory.",
    )
    forwarded_allow_ips: str = Field(
        "",
        description="Comma-separated addresses (or networks) of reverse proxies whose X-Forwarded-For "
        "header names the client (the address failed authentications are counted by); empty: none, the "
        "connection's address is the client's.",
    )

    @property
    def cors_origin_list(self) -> list[str]:
        """DESCENT_CORS_ORIGINS as a list."""
        return [origin.strip() for origin in self.cors_origins.split(",") if origin.strip()]

    @property
    def rate_limit_storage(self) -> str:
        """The storage URL of the token buckets."""
        if self.rate_limit_url:
            return self.rate_limit_url
        return self.broker_url if self.runner == "celery" else "memory://"

    @field_validator("rate_limit", "auth_failure_rate_limit")
    @classmethod
    def _rate_is_n_per_unit(cls, value: str, info: ValidationInfo) -> str:
        if value and not RATE_PATTERN.fullmatch(value):
            name = f"DESCENT_{(info.field_name or '').upper()}"
            raise ValueError(f"{name} must look like 20/second or 600/minute, got {value!r}")
        return value

    @model_validator(mode="after")
    def _heartbeats_fit_the_timeout(self) -> Settings:
        if self.heartbeat_timeout_s < 3 * self.heartbeat_interval_s:
            raise ValueError(
                f"DESCENT_HEARTBEAT_TIMEOUT_S ({self.heartbeat_timeout_s:g}) must be at least 3 times "
                f"DESCENT_HEARTBEAT_INTERVAL_S ({self.heartbeat_interval_s:g}), so that one late heartbeat "
                "does not get a healthy job requeued"
            )
        return self
