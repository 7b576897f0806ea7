"""POST /v1/datasets: a JSON, CSV or ``.npz`` body to a stored dataset, at most once per Idempotency-Key."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.errors import InvalidInput, field_error
from service.http.arrays import to_array
from service.http.body import JSONBody, parse_json, validate
from service.http.npz import npz_error, read_npz
from service.http.schemas.datasets import DEFAULT_NAME, DatasetCreate
from service.services.datasets.csv_format import parse_csv
from service.services.datasets.ingest import ingest_arrays, ingest_generator
from service.services.datasets.labels import Array, Labels
from service.services.datasets.limits import check_dataset_size
from service.services.idempotency import Scope, check_key, create_once
from service.settings import Settings
from service.store import Claim, DatasetRecord, Store, get_dataset

IDEMPOTENCY_SCOPE = "POST /v1/datasets"
EXACT_INTEGER_LIMIT = 2**53
# The query parameters of POST /v1/datasets.
UPLOAD_QUERY = ("name", "label", "task")


@dataclass(frozen=True)
class Upload:
    """A POST /v1/datasets request.

    Attributes
    ----------
    kind : {"json", "csv", "npz"}
        The body's format, from its Content-Type.
    content_type : str
        The Content-Type header as sent (part of the idempotency fingerprint).
    raw : bytes
        The body.
    query : list of (str, str)
        Every query parameter (part of the idempotency fingerprint).
    name, label, task : str or None
        The query parameters, for every kind of body: the dataset's name (in place of a JSON body's;
        default 'upload'), the label column's name (CSV: the column holding the labels; otherwise the
        name it gets in the dataset's CSV form) and the task (in place of a JSON body's).
    """

    kind: str
    content_type: str
    raw: bytes
    query: list[tuple[str, str]]
    name: str | None = None
    label: str | None = None
    task: str | None = None


def check_query(given: Collection[str]) -> None:
    """422 for a query parameter not named in :data:`UPLOAD_QUERY`: the query is part of an
    Idempotency-Key's fingerprint, so a stray one must not pass unnoticed.

    ``name``, ``label`` and ``task`` mean the same for every kind of body (see :class:`Upload`).
    """
    unknown = sorted({key for key in given if key not in UPLOAD_QUERY})
    if unknown:
        raise InvalidInput(
            f"unknown query parameter(s) {unknown}; allowed: {', '.join(UPLOAD_QUERY)}",
            errors=[{"loc": ["query", key], "msg": "unknown query parameter"} for key in unknown],
        )


def create(
    store: Store, settings: Settings, upload: Upload, *, idempotency_key: str | None = None
) -> tuple[DatasetRecord, bool]:
    """Store the uploaded dataset, unless the Idempotency-Key already did.

    Returns
    -------
    record : DatasetRecord
    replayed : bool
        True when the key had already created ``record`` with the same request; the API then answers
        200 instead of 201.

    Raises
    ------
    InvalidInput, PayloadTooLarge
        422 or 413 for a body that does not make a dataset (see :func:`ingest_arrays`), or a bad key.
    Conflict
        409 when the key was used with a different request, or its dataset has since been deleted.
    """
    key = check_key(idempotency_key)
    owner = settings.owner
    fingerprint = "" if key is None else request_fingerprint(upload.content_type, upload.query, upload.raw)
    return create_once(
        store,
        owner,
        upload_scope(store, owner),
        key,
        fingerprint,
        lambda claim: _ingest(store, settings, upload, owner, claim),
        status_code=201,
        wait_s=settings.idempotency_wait_s,
    )


def upload_scope(store: Store, owner: str) -> Scope[DatasetRecord]:
    """How an Idempotency-Key of POST /v1/datasets replays its dataset."""
    return Scope(
        name=IDEMPOTENCY_SCOPE,
        noun="dataset",
        fetch=lambda dataset_id: get_dataset(store, dataset_id, owner=owner),
    )


def request_fingerprint(content_type: str, query: Iterable[tuple[str, str]], body: bytes) -> str:
    """SHA-256 over what decides the created dataset: the content type, the query and the raw body."""
    digest = hashlib.sha256()
    digest.update(content_type.strip().lower().encode())
    for key, value in sorted(query):
        digest.update(f"\n{key}={value}".encode())
    digest.update(b"\n\n")
    digest.update(body)
    return digest.hexdigest()


def _ingest(
    store: Store, settings: Settings, upload: Upload, owner: str, claim: Claim | None
) -> DatasetRecord:
    if upload.kind == "json":
        return create_from_json(
            store,
            settings,
            parse_json(upload.raw),
            owner=owner,
            claim=claim,
            name=upload.name,
            label=upload.label,
            task=upload.task,
        )
    name = upload.name or DEFAULT_NAME
    if upload.kind == "csv":
        return create_from_csv(
            store,
            settings,
            upload.raw,
            owner=owner,
            name=name,
            label=upload.label,
            task=upload.task,
            claim=claim,
        )
    return create_from_npz(
        store,
        settings,
        upload.raw,
        owner=owner,
        name=name,
        label=upload.label,
        task=upload.task,
        claim=claim,
    )


# ---- the body formats -----------------------------------------------------------------------------


def create_from_json(
    store: Store,
    settings: Settings,
    body: JSONBody,
    *,
    owner: str,
    claim: Claim | None = None,
    name: str | None = None,
    label: str | None = None,
    task: str | None = None,
) -> DatasetRecord:
    """A JSON body: ``{"name"?, "X", "y", "task"?}`` or ``{"name"?, "generator"}``.

    ``name`` and ``task`` from the query, when given, take the place of the body's (the task applies to
    a generator's labels as to uploaded ones); ``label`` names the label column of the CSV form.
    """
    request = validate(DatasetCreate, body)
    name = name or request.name
    if request.generator is not None:
        return ingest_generator(
            store,
            settings,
            owner=owner,
            name=name,
            spec=request.generator,
            task=task,
            label=label,
            claim=claim,
        )
    X, y = arrays_from_json(request.X, request.y, settings, scan_booleans=body.scan_booleans)
    return ingest_arrays(
        store,
        settings,
        owner=owner,
        name=name,
        X=X,
        y=y,
        task=task or request.task,
        source={"kind": "json"},
        label=label,
        claim=claim,
    )


def arrays_from_json(
    X: Any, y: Any, settings: Settings, *, scan_booleans: bool = True, field_prefix: str = ""
) -> tuple[Array, Labels]:
    """Convert JSON ``X`` (nested lists of numbers) and ``y`` (numbers or strings) for :func:`ingest_arrays`.

    Parameters
    ----------
    X : list of list of number
    y : list of number, list of list of number, or list of str
    settings : Settings
    scan_booleans : bool
        ``JSONBody.scan_booleans`` (see ``service.http.arrays.to_array``).
    field_prefix : str
        Prefix of the field names in error messages.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features), float64
    y : ndarray of shape (n_samples,) or (n_samples, n_outputs), float64, or list of str

    Raises
    ------
    PayloadTooLarge
        When X has more rows, features or numbers than the dataset limits (checked before converting).
    InvalidInput
        For ragged or non-numeric X, mixed or non-finite y.
    """
    x_name, y_name = f"{field_prefix}X", f"{field_prefix}y"
    if isinstance(X, list) and X and isinstance(X[0], list):
        # Cheap size checks before converting anything: the body may be as large as the body limit.
        check_dataset_size(settings, len(X), len(X[0]))
    X_arr = to_array(
        X, x_name, ndim=2, max_elements=settings.max_dataset_elements, scan_booleans=scan_booleans
    )
    if not isinstance(y, list):
        raise field_error(y_name, "must be an array of numbers or of strings")
    if y and isinstance(y[0], str):
        for i, value in enumerate(y):
            if not isinstance(value, str):
                raise field_error(
                    f"{y_name}[{i}]", f"must be a string like {y_name}[0], got {_json_kind(value)}"
                )
        return X_arr, y
    for i, value in enumerate(y):
        if isinstance(value, str):
            raise field_error(f"{y_name}[{i}]", f"must be a number like {y_name}[0], got a string")
    # One label or target per sample, or a row of them (multilabel, multi-output regression).
    y_arr = to_array(
        y, y_name, ndim=(1, 2), max_elements=settings.max_dataset_elements, scan_booleans=scan_booleans
    )
    if y_arr.size and float(np.abs(y_arr).max()) >= EXACT_INTEGER_LIMIT:
        check_exact_integers(y, y_name)
    return X_arr, y_arr


def check_exact_integers(y: list[Any], y_name: str) -> None:
    """422 naming the first JSON integer of y beyond ±2**53, which float64 (and JSON readers) cannot
    keep exactly: 2**53 + 1 would silently become 2**53, another label. Class names that big are strings.
    """
    for i, value in enumerate(y):
        cells = enumerate(value) if isinstance(value, list) else [(None, value)]
        for j, cell in cells:
            if type(cell) is int and abs(cell) > EXACT_INTEGER_LIMIT:
                raise _inexact(f"{y_name}[{i}]" + ("" if j is None else f"[{j}]"), cell)


def _inexact(where: str, value: int) -> InvalidInput:
    return field_error(
        where,
        f"is the integer {value}, beyond ±2^53 ({EXACT_INTEGER_LIMIT}), which a float64 label cannot hold"
        " exactly; send labels that large as strings",
    )


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "an array" if isinstance(value, list) else "an object"


def create_from_csv(
    store: Store,
    settings: Settings,
    raw: bytes,
    *,
    owner: str,
    name: str,
    label: str | None,
    task: str | None,
    claim: Claim | None = None,
) -> DatasetRecord:
    """A ``text/csv`` body (UTF-8, a byte-order mark allowed); ``label`` picks the label column (default:
    the last), which keeps its name."""
    text = io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8-sig", newline="")
    table = parse_csv(text, label=label, settings=settings)
    source = {"kind": "csv", "columns": table.columns, "label": table.label}
    return ingest_arrays(
        store,
        settings,
        owner=owner,
        name=name,
        X=table.X,
        y=table.labels,
        task=task,
        source=source,
        claim=claim,
    )


def create_from_npz(
    store: Store,
    settings: Settings,
    raw: bytes,
    *,
    owner: str,
    name: str,
    label: str | None,
    task: str | None,
    claim: Claim | None = None,
) -> DatasetRecord:
    """An ``.npz`` body holding arrays X and y (labels may be a ``str`` array); ``label`` names the label
    column of the CSV form."""
    arrays = read_npz(raw, max_elements=settings.max_dataset_elements)
    names = sorted(arrays)
    if names != ["X", "y"]:
        raise npz_error(f"the archive must hold exactly the arrays 'X' and 'y', got {names}")
    return ingest_arrays(
        store,
        settings,
        owner=owner,
        name=name,
        X=arrays["X"],
        y=arrays["y"],
        task=task,
        source={"kind": "npz"},
        label=label,
        claim=claim,
    )
