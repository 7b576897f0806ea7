"""The requests of every operation, built once for the sync and the async client (which only send them).

A :class:`Call` says what to send and how a failed attempt may be retried: ``"connect"`` retries only
when the request never reached the service (always safe), ``"always"`` retries on any transport error
and on 503 (for reads, and for creations made safe by their Idempotency-Key).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

import httpx
from pydantic import BaseModel

from descent_client import _arrays
from descent_client.errors import Conflict, ServiceUnavailable, TransportError, error_from_response

Retry = Literal["connect", "always"]
DEFAULT_URL = "http://127.0.0.1:8000"
URL_VARIABLE = "DESCENT_URL"
KEY_VARIABLE = "DESCENT_API_KEY"
NPZ_MEDIA_TYPE = _arrays.NPZ_MEDIA_TYPE
NPY_MEDIA_TYPE = _arrays.NPY_MEDIA_TYPE
JSON_MEDIA_TYPE = "application/json"


@dataclass(frozen=True)
class Call:
    """One HTTP request of the API."""

    method: str
    path: str
    params: dict[str, Any] | None = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    retry: Retry = "connect"


def resolve_url(url: str | None) -> str:
    """The base URL: the argument, else ``DESCENT_URL``, else http://127.0.0.1:8000."""
    chosen = url or os.environ.get(URL_VARIABLE) or DEFAULT_URL
    return chosen.rstrip("/")


def resolve_key(api_key: str | None) -> str | None:
    """The API key: the argument, else ``DESCENT_API_KEY``, else none."""
    return api_key or os.environ.get(KEY_VARIABLE) or None


def base_headers(api_key: str | None, user_agent: str) -> dict[str, str]:
    headers = {"Accept": "application/json", "User-Agent": user_agent}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


def _json(method: str, path: str, body: Any, **kwargs: Any) -> Call:
    headers = {"Content-Type": JSON_MEDIA_TYPE, **kwargs.pop("headers", {})}
    return Call(method, path, content=_arrays.dumps(body), headers=headers, **kwargs)


def _page(limit: int | None, cursor: str | None, **extra: Any) -> dict[str, Any]:
    params = {"limit": limit, "cursor": cursor, **extra}
    return {k: v for k, v in params.items() if v is not None}


def new_key() -> str:
    """A fresh Idempotency-Key."""
    return uuid.uuid4().hex


# ---- datasets ------------------------------------------------------------------------------------


def dataset_from_arrays(X: Any, y: Any, key: str | None, **query: Any) -> Call:
    """Arrays go as ``.npz``: exact float bits, compact, and string labels as they are; ``query`` holds
    the upload's name, label and task."""
    archive = _arrays.npz_bytes(X=_arrays.matrix(X), y=_arrays.labels(y))
    return _upload(archive, NPZ_MEDIA_TYPE, query, key)


def dataset_file(
    source: str | Path | bytes,
    kind: Literal["csv", "npz"],
    *,
    name: str | None,
    key: str | None,
    **query: Any,
) -> Call:
    """A CSV or ``.npz`` upload from a path or bytes; the name defaults to the file's stem."""
    raw = source if isinstance(source, bytes) else Path(source).read_bytes()
    if name is None and not isinstance(source, bytes):
        name = Path(source).stem
    media = "text/csv; charset=utf-8" if kind == "csv" else NPZ_MEDIA_TYPE
    return _upload(raw, media, {"name": name, **query}, key)


def _upload(raw: bytes, media: str, query: Mapping[str, Any], key: str | None) -> Call:
    params = {k: v for k, v in query.items() if v is not None}
    headers = {"Content-Type": media, "Idempotency-Key": key or new_key()}
    return Call("POST", "/v1/datasets", params=params, content=raw, headers=headers, retry="always")


def dataset_json(body: Mapping[str, Any], key: str | None, **query: Any) -> Call:
    """A DatasetCreate body: ``{"name"?, "X", "y"}`` or ``{"name"?, "generator"}``; ``query`` holds the
    upload's name, label and task, which take the place of the body's name and task."""
    return _json(
        "POST",
        "/v1/datasets",
        dict(body),
        params={k: v for k, v in query.items() if v is not None},
        headers={"Idempotency-Key": key or new_key()},
        retry="always",
    )


def list_call(resource: str, limit: int | None, cursor: str | None, **extra: Any) -> Call:
    return Call("GET", f"/v1/{resource}", params=_page(limit, cursor, **extra), retry="always")


def get_call(resource: str, resource_id: str, **params: Any) -> Call:
    query = {k: v for k, v in params.items() if v is not None}
    return Call("GET", f"/v1/{resource}/{resource_id}", params=query or None, retry="always")


def delete_call(resource: str, resource_id: str) -> Call:
    return Call("DELETE", f"/v1/{resource}/{resource_id}")


# ---- jobs ----------------------------------------------------------------------------------------


def training_body(config: BaseModel | Mapping[str, Any] | None, fields: Mapping[str, Any]) -> dict[str, Any]:
    """A TrainingConfig as JSON: ``config`` updated with ``fields``; a Dataset object becomes its id."""
    if isinstance(config, BaseModel):
        body = config.model_dump(mode="python", exclude_unset=True)
    else:
        body = dict(config or {})
    body.update(fields)
    dataset = body.get("dataset")
    if dataset is not None and hasattr(dataset, "id") and hasattr(dataset, "sha256"):
        body.pop("dataset")
        body["dataset_id"] = dataset.id
    if isinstance(body.get("dataset_id"), BaseModel):
        body["dataset_id"] = body["dataset_id"].id
    return body


def create_job(body: Mapping[str, Any], key: str | None, dry_run: bool = False) -> Call:
    params = {"dry_run": "true"} if dry_run else None
    headers = {} if dry_run else {"Idempotency-Key": key or new_key()}
    return _json("POST", "/v1/jobs", dict(body), params=params, headers=headers, retry="always")


def cancel_job(job_id: str) -> Call:
    return Call("POST", f"/v1/jobs/{job_id}/cancel")


def job_metrics(job_id: str, since_epoch: int | None = None, max_points: int | None = None) -> Call:
    params = {k: v for k, v in {"since_epoch": since_epoch, "max_points": max_points}.items() if v}
    return Call("GET", f"/v1/jobs/{job_id}/metrics", params=params or None, retry="always")


def job_events(job_id: str, last_event_id: int) -> Call:
    headers = {"Accept": "text/event-stream"}
    if last_event_id:
        headers["Last-Event-ID"] = str(last_event_id)
    return Call("GET", f"/v1/jobs/{job_id}/events", headers=headers, retry="always")


# ---- models --------------------------------------------------------------------------------------


def arrays_call(path: str, body: Mapping[str, Any], npy_field: str | None = None) -> Call:
    """A request whose body holds arrays: JSON while they are small, binary beyond
    ``BINARY_THRESHOLD_BYTES`` of numbers: the lone array ``npy_field`` as ``.npy``, several as
    ``.npz`` members named by their path, the other fields as query parameters; the answer is asked
    for as ``.npz`` then. It changes nothing on the service: safe to send again."""
    fields = {key: value for key, value in body.items() if value is not None}
    members, query = _arrays.split_fields(fields)
    if sum(8 * array.size for array in members.values()) <= _arrays.BINARY_THRESHOLD_BYTES:
        return _json("POST", path, fields, retry="always")
    if npy_field is not None and list(members) == [npy_field]:
        content, media = _arrays.npy_bytes(members[npy_field]), NPY_MEDIA_TYPE
    else:
        content, media = _arrays.npz_stored(members), NPZ_MEDIA_TYPE
    headers = {"Content-Type": media, "Accept": NPZ_MEDIA_TYPE}
    return Call("POST", path, params=query or None, content=content, headers=headers, retry="always")


def answer(response: httpx.Response) -> dict[str, Any]:
    """The answer to an ``arrays_call`` with its arrays as ndarrays, from JSON or ``.npz`` alike."""
    if response.headers.get("content-type", "").startswith(NPZ_MEDIA_TYPE):
        return _arrays.unflatten(_arrays.npz_arrays(response.content))
    document: dict[str, Any] = _arrays.with_arrays(response.json())
    return document


def predict(model_id: str, X: Any = None, dataset_id: str | None = None) -> Call:
    path = f"/v1/models/{model_id}/predict"
    if dataset_id is not None:
        return _json("POST", path, {"dataset_id": dataset_id}, retry="always")
    return arrays_call(path, {"X": _arrays.matrix(X)}, npy_field="X")


def dataset_data(dataset_id: str) -> Call:
    """X and y as ``.npz``: exact bits, and no text to parse."""
    return Call("GET", f"/v1/datasets/{dataset_id}/data", headers={"Accept": NPZ_MEDIA_TYPE}, retry="always")


def dataset_arrays(response: httpx.Response) -> tuple[Any, Any]:
    """X (float64) and y (labels or targets) of a dataset's data, as ``.npz`` or JSON."""
    if response.headers.get("content-type", "").startswith(NPZ_MEDIA_TYPE):
        arrays = _arrays.npz_arrays(response.content)
        return _arrays.matrix(arrays["X"]), arrays["y"]
    body = response.json()
    return _arrays.matrix(body["X"]), _arrays.label_array(body["y"])


def export_model(model_id: str, format: Literal["json", "npz"]) -> Call:
    accept = NPZ_MEDIA_TYPE if format == "npz" else JSON_MEDIA_TYPE
    return Call(
        "GET",
        f"/v1/models/{model_id}/export",
        params={"format": format},
        headers={"Accept": accept},
        retry="always",
    )


def import_model(source: str | Path | bytes | Mapping[str, Any], key: str | None = None) -> Call:
    """A model export: its JSON document (a mapping, or a ``.json`` file) or its ``.npz`` bytes or file.

    It carries an Idempotency-Key, so that a retry after a lost answer stores no second model.
    """
    headers = {"Idempotency-Key": key or new_key()}
    if isinstance(source, Mapping):
        return _json("POST", "/v1/models", dict(source), headers=headers, retry="always")
    if isinstance(source, bytes):
        raw = source
        is_json = raw.lstrip()[:1] == b"{"
    else:
        raw = Path(source).read_bytes()
        is_json = Path(source).suffix.lower() == ".json" or raw.lstrip()[:1] == b"{"
    media = JSON_MEDIA_TYPE if is_json else NPZ_MEDIA_TYPE
    return Call("POST", "/v1/models", content=raw, headers={"Content-Type": media, **headers}, retry="always")


def backoff(attempt: int) -> float:
    """Seconds to wait before retry number ``attempt`` (0-based): 0.25, 0.5, 1, 2, then 4 at most."""
    return float(min(0.25 * 2**attempt, 4.0))


def delay_after_error(
    call: Call, base_url: str, attempt: int, retries: int, exc: httpx.TransportError
) -> float:
    """The wait before retrying ``call`` after a transport error; ``TransportError`` when it may not be."""
    unsent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
    if attempt >= retries or not (unsent or call.retry == "always"):
        detail = str(exc) or type(exc).__name__
        raise TransportError(f"{call.method} {base_url}{call.path}: {detail}") from exc
    return backoff(attempt)


def delay_after_response(call: Call, attempt: int, retries: int, response: httpx.Response) -> float | None:
    """None for a success; the wait before retrying a 503, or a 409 with Retry-After (a request with
    the same Idempotency-Key is still creating: the retry gets its resource), at most 30 s; otherwise
    the ``APIError`` of the response's status is raised."""
    if not response.is_error:
        return None
    error = error_from_response(response)
    in_progress = isinstance(error, Conflict) and "retry-after" in error.headers
    if not (
        (isinstance(error, ServiceUnavailable) or in_progress)
        and call.retry == "always"
        and attempt < retries
    ):
        raise error
    retry_after = _seconds(error.headers.get("retry-after"))
    return min(retry_after, 30.0) if retry_after is not None else backoff(attempt)


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


class StreamClosed(Exception):
    """An event stream ended before the job's end event."""


# Errors after which a follow reconnects (for up to the client's reconnect_timeout at a stretch).
RECONNECTABLE = (httpx.TransportError, TransportError, ServiceUnavailable, StreamClosed)


def reconnect_delay(
    job_id: str,
    exc: Exception,
    failing_since: float,
    attempt: int,
    reconnect_timeout: float,
    deadline: float | None,
) -> float:
    """The wait before a follow reconnects; ``TimeoutError`` past the deadline, ``TransportError`` when
    the service has been unreachable for longer than ``reconnect_timeout``."""
    now = time.monotonic()
    if deadline is not None and now >= deadline:
        raise TimeoutError(f"job {job_id} did not end in time") from None
    if now - failing_since > reconnect_timeout:
        raise TransportError(f"following job {job_id}: {exc}") from exc
    return backoff(attempt)


def read_timeout(deadline: float | None) -> float:
    """The read timeout of an event stream: keep-alives come every 10 s, so a silent minute is a dead
    connection; a ``wait`` with a deadline reads no longer than the deadline."""
    if deadline is None:
        return 60.0
    return max(0.05, min(60.0, deadline - time.monotonic()))


T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list: the items and the cursor of the next page (None on the last)."""

    items: list[T]
    next_cursor: str | None
