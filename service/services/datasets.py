"""Dataset service functions: ingest JSON arrays, CSV, ``.npz`` and generators; read datasets back.

Stored form (the training jobs rely on it): X is float64 of shape (n_samples, n_features). For
classification y holds int64 class *indices* 0..K-1 and the record's ``classes`` the sorted original
labels (numbers, or strings), ``class_counts`` the samples per index; for regression y is float64 and
both are None.

Every function here is synchronous (it parses, computes and talks to the store): async handlers run
them in a worker thread.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.datasets import make_dataset, task_of
from service.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge, field_error, field_loc
from service.http.arrays import to_array
from service.http.body import JSONBody, validate
from service.http.schemas.datasets import DatasetCreate
from service.http.schemas.training import GeneratorSpec
from service.settings import Settings
from service.store import (
    DatasetRecord,
    Store,
    create_dataset,
    delete_dataset,
    get_dataset,
    load_dataset_arrays,
    recall,
    remember,
)
from service.vocabulary import TASKS

Array = np.ndarray[Any, Any]
Labels = Array | Sequence[str]

# Integer labels with more distinct values than this are taken for regression targets unless the
# task says otherwise; no classification dataset may have more classes than MAX_CLASSES.
INFER_MAX_CLASSES = 100
MAX_CLASSES = 1000
# Integers above 2**53 are not all representable in float64, so such "labels" are not trusted as classes.
_EXACT_INT = 2.0**53
MAX_NAME_LENGTH = 200
IDEMPOTENCY_SCOPE = "POST /v1/datasets"
# Rows converted to float64 per NumPy call while a CSV streams in, and written per chunk on the way out.
CSV_CHUNK_ROWS = 4096


# ---- labels and tasks ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EncodedLabels:
    """Labels in stored form.

    Attributes
    ----------
    task : {"binary", "multiclass", "regression"}
    y : ndarray of shape (n_samples,)
        int64 class indices (classification) or float64 targets (regression).
    classes : list or None
        Sorted distinct labels (ints, floats or strings); ``y[i]`` indexes it.
    class_counts : list of int or None
        Samples of each class, in the order of ``classes``.
    """

    task: str
    y: Array
    classes: list[Any] | None
    class_counts: list[int] | None


def _preview(values: Sequence[Any], most: int = 10) -> str:
    shown = ", ".join(repr(v) for v in values[:most])
    return f"[{shown}{', …' if len(values) > most else ''}]"


def _classification(task: str | None, classes: list[Any], name: str, inferred: bool) -> str:
    """The classification task for these classes, or 422 explaining why they do not make one."""
    k = len(classes)
    if k < 2:
        hint = (
            "; for real-valued targets pass task 'regression'"
            if inferred and not isinstance(classes[0], str)
            else ""
        )
        raise field_error(
            name, f"holds a single class ({classes[0]!r}); classification needs at least 2 classes{hint}"
        )
    if task == "binary" and k != 2:
        raise field_error(
            name, f"must hold exactly 2 classes for task 'binary', found {k}: {_preview(classes)}"
        )
    if k > MAX_CLASSES:
        raise field_error(name, f"holds {k} classes; the limit is {MAX_CLASSES}")
    return task or ("binary" if k == 2 else "multiclass")


def _string_labels(values: Sequence[str] | Array, task: str | None, name: str) -> EncodedLabels:
    if task == "regression":
        raise field_error(name, f"must hold numbers for task 'regression', got strings such as {values[0]!r}")
    if isinstance(values, np.ndarray):
        uniques, y = np.unique(values, return_inverse=True)
        classes = [str(c) for c in uniques]
    else:
        # A dict beats a fixed-width NumPy string array here: long labels would make that array huge.
        classes = sorted(set(values))
        index = {label: i for i, label in enumerate(classes)}
        y = np.fromiter((index[v] for v in values), dtype=np.int64, count=len(values))
    chosen = _classification(task, classes, name, task is None)
    counts = np.bincount(y, minlength=len(classes))
    return EncodedLabels(chosen, y.astype(np.int64, copy=False), classes, counts.tolist())


def encode_labels(values: Labels, task: str | None, name: str = "y") -> EncodedLabels:
    """Infer (or check) the task of labels and convert them to their stored form.

    Parameters
    ----------
    values : ndarray of shape (n_samples,) or sequence of str
        Numbers (any real or boolean dtype) or strings (a ``str`` dtype array or a list of ``str``).
    task : {"binary", "multiclass", "regression"} or None
        None infers it: strings → classification; integers with at most 2 distinct values → binary,
        3 to 100 → multiclass; anything else → regression.
    name : str
        The field's name in error messages.

    Returns
    -------
    EncodedLabels

    Raises
    ------
    InvalidInput
        For non-finite or non-numeric values, string labels with task 'regression', fewer than 2
        classes, a task 'binary' with other than 2 classes, or more than ``MAX_CLASSES`` classes.
    """
    if task is not None and task not in TASKS:
        raise field_error("task", f"must be one of {list(TASKS)}, got {task!r}")
    if len(values) == 0:
        raise field_error(name, "must not be empty")
    if not isinstance(values, np.ndarray) or values.dtype.kind == "O":
        values = _plain_labels(values, name)
        if isinstance(values, list):
            return _string_labels(values, task, name)
    if values.ndim != 1:
        raise field_error(name, f"must be 1-dimensional, got shape {list(values.shape)}")
    kind = values.dtype.kind
    if kind == "U":
        return _string_labels(values, task, name)
    if kind == "b":
        values = values.astype(np.int64)
        kind = "i"
    if kind not in "iuf":
        raise field_error(name, f"must hold numbers or strings, got dtype {values.dtype}")
    if kind == "f" and not np.isfinite(values).all():
        bad = int(np.flatnonzero(~np.isfinite(values))[0])
        raise field_error(name, f"must hold finite numbers only, found {values[bad]} at {name}[{bad}]")
    if kind == "f":
        integral = bool(np.all(np.floor(values) == values) and np.all(np.abs(values) <= _EXACT_INT))
    else:
        integral = True
    if task == "regression" or (task is None and not integral):
        return EncodedLabels("regression", values.astype(np.float64), None, None)
    uniques, y = np.unique(values, return_inverse=True)
    if task is None and len(uniques) > INFER_MAX_CLASSES:
        return EncodedLabels("regression", values.astype(np.float64), None, None)
    classes = [int(c) for c in uniques] if integral else [float(c) for c in uniques]
    chosen = _classification(task, classes, name, task is None)
    counts = np.bincount(y, minlength=len(classes))
    return EncodedLabels(chosen, y.astype(np.int64, copy=False), classes, counts.tolist())


def _plain_labels(values: Sequence[Any] | Array, name: str) -> Array | list[str]:
    """Labels held as Python objects: all strings (a list back) or all real numbers (a float64 array)."""
    flat = values.tolist() if isinstance(values, np.ndarray) else list(values)
    if all(isinstance(v, str) for v in flat):
        return flat
    if all(isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool) for v in flat):
        return np.asarray(flat, dtype=np.float64)
    raise field_error(name, "must hold only numbers or only strings, one label per sample")


# ---- ingestion ----------------------------------------------------------------------------------


def _too_large(what: str, count: int, setting: str, limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the dataset has {count} {what}; the limit is {limit} (setting {setting})",
        errors=[{"loc": ["body"], "msg": f"{count} {what} is over the limit of {limit} ({setting})"}],
    )


def check_dataset_size(settings: Settings, n_samples: int, n_features: int) -> None:
    """413 naming the limit when a dataset of this shape is over the configured rows, features or elements."""
    if n_samples > settings.max_dataset_rows:
        raise _too_large("rows", n_samples, "max_dataset_rows", settings.max_dataset_rows)
    if n_features > settings.max_dataset_features:
        raise _too_large("features", n_features, "max_dataset_features", settings.max_dataset_features)
    if n_samples * n_features > settings.max_dataset_elements:
        raise _too_large(
            "numbers (rows × features)",
            n_samples * n_features,
            "max_dataset_elements",
            settings.max_dataset_elements,
        )


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME_LENGTH:
        raise field_error("name", f"must be a string of 1 to {MAX_NAME_LENGTH} characters, got {name!r}")


def ingest_arrays(
    store: Store,
    settings: Settings,
    *,
    owner: str,
    name: str,
    X: Array,
    y: Labels,
    task: str | None,
    source: dict[str, Any],
    field_prefix: str = "",
) -> DatasetRecord:
    """Validate a dataset's arrays, put them in stored form and store them.

    Parameters
    ----------
    store : Store
    settings : Settings
        Its ``max_dataset_rows``, ``max_dataset_features`` and ``max_dataset_elements`` apply.
    owner : str
    name : str
        1 to 200 characters.
    X : ndarray of shape (n_samples, n_features)
        Real or boolean dtype, finite; stored as float64.
    y : ndarray of shape (n_samples,) or sequence of str
        Labels or targets: numbers, or strings (class names).
    task : {"binary", "multiclass", "regression"} or None
        None infers it from y (see :func:`encode_labels`).
    source : dict
        How the data came to be, stored with it (e.g. ``{"kind": "json"}``).
    field_prefix : str
        Prefix of the field names in error messages, e.g. ``"dataset."`` for data inside a job.

    Returns
    -------
    DatasetRecord

    Raises
    ------
    PayloadTooLarge
        413 when the rows, features or numbers exceed their limit (named in the detail).
    InvalidInput
        422 for a bad shape, dtype or name, non-finite values, fewer than 2 samples, or labels that do
        not fit the task (fewer than 2 classes for classification).
    """
    _check_name(name)
    x_name, y_name = f"{field_prefix}X", f"{field_prefix}y"
    X = np.asarray(X)
    if X.ndim != 2:
        raise field_error(
            x_name, f"must have 2 dimensions (n_samples, n_features), got shape {list(X.shape)}"
        )
    if X.dtype.kind not in "biuf":
        raise field_error(x_name, f"must hold real numbers, got dtype {X.dtype}")
    n_samples, n_features = X.shape
    check_dataset_size(settings, n_samples, n_features)
    if n_samples < 2:
        raise field_error(x_name, f"must hold at least 2 samples, got {n_samples}")
    if n_features < 1:
        raise field_error(x_name, "must have at least one feature column, got 0")
    X = np.ascontiguousarray(X, dtype=np.float64)
    finite = np.isfinite(X)
    if not finite.all():
        row, col = (int(i) for i in np.argwhere(~finite)[0])
        raise field_error(f"{x_name}[{row}][{col}]", f"must be a finite number, got {X[row, col]}")
    if isinstance(y, np.ndarray) and y.ndim != 1:
        raise field_error(y_name, f"must have 1 dimension (n_samples,), got shape {list(y.shape)}")
    n_labels = len(y)
    if n_labels != n_samples:
        raise field_error(y_name, f"has {n_labels} entries but X has {n_samples} rows")
    labels = encode_labels(y, task, y_name)
    return create_dataset(
        store,
        owner=owner,
        name=name,
        X=X,
        y=labels.y,
        task=labels.task,
        classes=labels.classes,
        class_counts=labels.class_counts,
        source=source,
    )


def ingest_generator(
    store: Store, settings: Settings, *, owner: str, name: str, spec: GeneratorSpec, field_prefix: str = ""
) -> DatasetRecord:
    """Draw a dataset with ``make_dataset`` and ``np.random.default_rng(spec.seed)``, and store it.

    Parameters
    ----------
    store : Store
    settings : Settings
    owner : str
    name : str
    spec : GeneratorSpec
        kind, n_samples, noise, n_classes, n_features and seed.
    field_prefix : str
        Prefix of the field names in error messages.

    Returns
    -------
    DatasetRecord
        Task from the generator's kind; for classification ``classes`` are 0..K-1.

    Raises
    ------
    InvalidInput
        422 when the generator's settings are inconsistent (e.g. n_classes for 'xor') or ask for more
        rows, features or numbers than the dataset limits allow (the limit is named).
    """
    where = f"{field_prefix}generator"
    n_features = spec.n_features or 2
    limits = (
        ("n_samples", spec.n_samples, "max_dataset_rows", settings.max_dataset_rows),
        ("n_features", n_features, "max_dataset_features", settings.max_dataset_features),
        ("n_samples", spec.n_samples * n_features, "max_dataset_elements", settings.max_dataset_elements),
    )
    for field, value, setting, limit in limits:
        if value > limit:
            what = "numbers (n_samples × n_features)" if setting == "max_dataset_elements" else field
            raise field_error(
                f"{where}.{field}", f"asks for {value} {what}; the limit is {limit} (setting {setting})"
            )
    try:
        task = task_of(spec.kind, spec.n_classes)
        X, y = make_dataset(
            spec.kind,
            spec.n_samples,
            noise=spec.noise,
            n_classes=spec.n_classes,
            n_features=spec.n_features,
            rng=np.random.default_rng(spec.seed),
        )
    except ValueError as exc:
        raise InvalidInput(f"{where}: {exc}", errors=[{"loc": field_loc(where), "msg": str(exc)}]) from None
    source = {"kind": "generator", "generator": spec.model_dump(mode="json")}
    return ingest_arrays(
        store, settings, owner=owner, name=name, X=X, y=y, task=task, source=source, field_prefix=field_prefix
    )


def arrays_from_json(
    X: Any, y: Any, settings: Settings, *, scan_booleans: bool = True, field_prefix: str = ""
) -> tuple[Array, Labels]:
    """Convert JSON ``X`` (nested lists of numbers) and ``y`` (numbers or strings) for :func:`ingest_arrays`.

    Parameters
    ----------
    X : list of list of number
    y : list of number or list of str
    settings : Settings
    scan_booleans : bool
        ``JSONBody.scan_booleans`` (see ``service.http.arrays.to_array``).
    field_prefix : str
        Prefix of the field names in error messages.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features), float64
    y : ndarray of shape (n_samples,), float64, or list of str

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
    y_arr = to_array(y, y_name, ndim=1, max_elements=settings.max_dataset_rows, scan_booleans=scan_booleans)
    return X_arr, y_arr


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "an array" if isinstance(value, list) else "an object"


def create_from_json(store: Store, settings: Settings, body: JSONBody, *, owner: str) -> DatasetRecord:
    """POST /v1/datasets with a JSON body: ``{"name", "X", "y", "task"?}`` or ``{"name", "generator"}``."""
    request = validate(DatasetCreate, body)
    if request.generator is not None:
        return ingest_generator(store, settings, owner=owner, name=request.name, spec=request.generator)
    X, y = arrays_from_json(request.X, request.y, settings, scan_booleans=body.scan_booleans)
    return ingest_arrays(
        store, settings, owner=owner, name=request.name, X=X, y=y, task=request.task, source={"kind": "json"}
    )


# ---- CSV ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CSVTable:
    """A parsed CSV upload.

    Attributes
    ----------
    X : ndarray of shape (n_samples, n_features), float64
    labels : ndarray of shape (n_samples,), float64, or list of str
        Numbers when every label parses as one, else the label strings as written.
    columns : list of str
        The header, in file order.
    label : str
        The label column's name.
    """

    X: Array
    labels: Labels
    columns: list[str]
    label: str


def _csv_error(msg: str, loc: Sequence[str | int] = ("body",)) -> InvalidInput:
    return InvalidInput(f"CSV body: {msg}", errors=[{"loc": list(loc), "msg": msg}])


def parse_csv(lines: Iterable[str], *, label: str | None, settings: Settings) -> CSVTable:
    """Parse CSV text (a header row, then one sample per row) with the standard ``csv`` module.

    Rows are read one at a time and converted to float64 in chunks, so the text is never held as
    one list of rows; limits are enforced while reading.

    Parameters
    ----------
    lines : iterable of str
        The text, e.g. a text file opened with ``newline=""``; blank lines are skipped.
    label : str or None
        The label column's name; None takes the last column.
    settings : Settings
        Dataset limits.

    Returns
    -------
    CSVTable

    Raises
    ------
    InvalidInput
        422 for an empty body, a missing label column, duplicate column names, a row with the wrong
        number of fields, an empty label, or a feature value that is not a finite number (naming the
        row, line and column).
    PayloadTooLarge
        413 as soon as the rows, features or numbers pass their limit.
    """
    reader = csv.reader(lines, strict=True)
    try:
        header = next((row for row in reader if row), None)
        if header is None:
            raise _csv_error("is empty; expected a header row naming the columns, then one row per sample")
        columns = [name.strip() for name in header]
        duplicates = sorted({c for c in columns if columns.count(c) > 1})
        if duplicates:
            raise _csv_error(f"the header names columns more than once: {duplicates}", ("body", "header"))
        label = columns[-1] if label is None else label
        if label not in columns:
            raise _csv_error(
                f"label column {label!r} is not in the header; columns: {columns}", ("query", "label")
            )
        if len(columns) < 2:
            raise _csv_error(f"needs at least one feature column besides the label column {label!r}")
        label_index = columns.index(label)
        features = [c for c in columns if c != label]
        n_columns, n_features = len(columns), len(features)
        check_dataset_size(settings, 0, n_features)
        max_rows = min(settings.max_dataset_rows, settings.max_dataset_elements // n_features)
        blocks: list[Array] = []
        labels: list[str] = []
        chunk: list[list[str]] = []
        chunk_lines: list[int] = []
        for row in reader:
            if not row:
                continue
            if len(row) != n_columns:
                raise _csv_error(
                    f"row {len(labels) + 1} (line {reader.line_num}) has {len(row)} fields but the header has"
                    f" {n_columns}",
                    ("body", len(labels) + 1),
                )
            if len(labels) >= max_rows:
                check_dataset_size(settings, len(labels) + 1, n_features)
            value = row.pop(label_index)
            if not value.strip():
                raise _csv_error(
                    f"row {len(labels) + 1} (line {reader.line_num}) has an empty label in column {label!r}",
                    ("body", len(labels) + 1, label),
                )
            labels.append(value)
            chunk.append(row)
            chunk_lines.append(reader.line_num)
            if len(chunk) == CSV_CHUNK_ROWS:
                blocks.append(_csv_block(chunk, chunk_lines, len(labels) - len(chunk), features))
                chunk, chunk_lines = [], []
        if chunk:
            blocks.append(_csv_block(chunk, chunk_lines, len(labels) - len(chunk), features))
    except csv.Error as exc:
        raise _csv_error(f"malformed at line {reader.line_num}: {exc}") from None
    except UnicodeDecodeError as exc:
        raise _csv_error(f"is not valid UTF-8 text ({exc.reason} at byte {exc.start} of a block)") from None
    if not labels:
        raise _csv_error("has a header but no data rows")
    X = np.concatenate(blocks) if len(blocks) > 1 else blocks[0]
    return CSVTable(X, _csv_labels(labels, label), columns, label)


def _csv_block(rows: list[list[str]], lines: list[int], first: int, features: list[str]) -> Array:
    """Convert a chunk of feature rows to float64, naming the first bad cell (row, line, column)."""
    try:
        block = np.array(rows, dtype=np.float64)
    except ValueError:
        for i, row in enumerate(rows):
            for j, cell in enumerate(row):
                try:
                    float(cell)
                except ValueError:
                    raise _not_a_number(first + i + 1, lines[i], features[j], cell) from None
        raise
    finite = np.isfinite(block)
    if not finite.all():
        i, j = (int(k) for k in np.argwhere(~finite)[0])
        raise _not_a_number(first + i + 1, lines[i], features[j], rows[i][j])
    return block


def _not_a_number(row: int, line: int, column: str, cell: str) -> InvalidInput:
    return _csv_error(
        f"row {row} (line {line}), column {column!r}: {cell!r} is not a finite number; feature columns"
        " must be numeric",
        ("body", row, column),
    )


def _csv_labels(labels: list[str], label: str) -> Labels:
    """Numbers when every label parses as one (then they must be finite), else the strings."""
    try:
        values = np.array(labels, dtype=np.float64)
    except ValueError:
        return labels
    finite = np.isfinite(values)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0]) + 1
        raise _csv_error(
            f"row {row}, label column {label!r}: {labels[row - 1]!r} is not a finite number",
            ("body", row, label),
        )
    return values


def create_from_csv(
    store: Store,
    settings: Settings,
    raw: bytes,
    *,
    owner: str,
    name: str,
    label: str | None,
    task: str | None,
) -> DatasetRecord:
    """POST /v1/datasets with a ``text/csv`` body (UTF-8, a byte-order mark allowed)."""
    text = io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8-sig", newline="")
    table = parse_csv(text, label=label, settings=settings)
    source = {"kind": "csv", "columns": table.columns, "label": table.label}
    return ingest_arrays(
        store, settings, owner=owner, name=name, X=table.X, y=table.labels, task=task, source=source
    )


# ---- .npz ---------------------------------------------------------------------------------------


def read_npz(raw: bytes, *, max_elements: int) -> dict[str, Array]:
    """Read an uploaded ``.npz`` archive (``numpy.savez``) without ever unpickling.

    Each member's ``.npy`` header is read first, so an object array or an array over the limit is
    refused before its data is decompressed.

    Parameters
    ----------
    raw : bytes
    max_elements : int
        Most elements one member may hold.

    Returns
    -------
    arrays : dict of str to ndarray
        By member name (without ``.npy``), in archive order.

    Raises
    ------
    InvalidInput
        422 for bytes that are not an ``.npz`` archive, members that are not ``.npy`` arrays, and
        object or structured dtypes.
    PayloadTooLarge
        413 for a member with more than ``max_elements`` elements.
    """
    if not raw.startswith(b"PK"):
        raise _npz_error("the body is not an .npz archive (a zip of .npy files, as numpy.savez writes)")
    arrays: dict[str, Array] = {}
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            for info in archive.infolist():
                if not info.filename.endswith(".npy"):
                    raise _npz_error(f"member {info.filename!r} is not an .npy array")
                key = info.filename.removesuffix(".npy")
                with archive.open(info) as member:
                    shape = _npy_shape(member, key)
                    size = math.prod(shape)
                    if size > max_elements:
                        raise PayloadTooLarge(
                            f"npz member {key!r} holds {size} elements; the limit is {max_elements}",
                            errors=[
                                {
                                    "loc": ["body", key],
                                    "msg": f"holds {size} elements; the limit is {max_elements}",
                                }
                            ],
                        )
                with archive.open(info) as member:
                    arrays[key] = np.lib.format.read_array(member, allow_pickle=False)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError) as exc:
        raise _npz_error(f"the body is not a readable .npz archive: {exc}") from None
    return arrays


def _npy_shape(member: Any, key: str) -> tuple[int, ...]:
    version = np.lib.format.read_magic(member)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(member)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(member)
    else:
        raise _npz_error(f"member {key!r} uses .npy format version {version}; versions 1.0 and 2.0 are read")
    if dtype.hasobject:
        raise _npz_error(
            f"member {key!r} holds Python objects (dtype object), which are never unpickled; save numeric"
            " (or fixed-width string) arrays"
        )
    if dtype.fields is not None:
        raise _npz_error(f"member {key!r} is a structured array (dtype {dtype}); save plain arrays")
    return tuple(int(n) for n in shape)


def _npz_error(msg: str) -> InvalidInput:
    return InvalidInput(msg, errors=[{"loc": ["body"], "msg": msg}])


def create_from_npz(
    store: Store, settings: Settings, raw: bytes, *, owner: str, name: str, task: str | None
) -> DatasetRecord:
    """POST /v1/datasets with an ``.npz`` body holding arrays X and y (labels may be a ``str`` array)."""
    arrays = read_npz(raw, max_elements=settings.max_dataset_elements)
    names = sorted(arrays)
    if names != ["X", "y"]:
        raise _npz_error(f"the archive must hold exactly the arrays 'X' and 'y', got {names}")
    return ingest_arrays(
        store,
        settings,
        owner=owner,
        name=name,
        X=arrays["X"],
        y=arrays["y"],
        task=task,
        source={"kind": "npz"},
    )


# ---- idempotency --------------------------------------------------------------------------------


def request_fingerprint(content_type: str, query: Iterable[tuple[str, str]], body: bytes) -> str:
    """SHA-256 over what decides the created dataset: the content type, the query and the raw body."""
    digest = hashlib.sha256()
    digest.update(content_type.strip().lower().encode())
    for key, value in sorted(query):
        digest.update(f"\n{key}={value}".encode())
    digest.update(b"\n\n")
    digest.update(body)
    return digest.hexdigest()


def create_once(
    store: Store, *, owner: str, key: str | None, fingerprint: str, create: Callable[[], DatasetRecord]
) -> tuple[DatasetRecord, bool]:
    """Run ``create`` unless the ``Idempotency-Key`` already produced a dataset.

    Returns
    -------
    record : DatasetRecord
    replayed : bool
        True when the key had already created ``record`` (the same request sent again); the API
        then answers 200 instead of 201, as POST /v1/jobs does for its replays.

    Raises
    ------
    Conflict
        409 when the key was used with a different request, or its dataset has since been deleted.
    """
    if key is None:
        return create(), False
    entry = recall(store, owner, IDEMPOTENCY_SCOPE, key)
    if entry is not None:
        return _replay(store, owner, key, entry.resource_id, entry.request_hash, fingerprint), True
    record = create()
    entry = remember(store, owner, IDEMPOTENCY_SCOPE, key, fingerprint, record.id, 201)
    if entry.resource_id != record.id:
        # A concurrent request with the same key stored its dataset first: answer with that one.
        delete_dataset(store, record.id, owner=owner)
        return _replay(store, owner, key, entry.resource_id, entry.request_hash, fingerprint), True
    return record, False


def _replay(
    store: Store, owner: str, key: str, dataset_id: str, stored: str, fingerprint: str
) -> DatasetRecord:
    if stored != fingerprint:
        raise Conflict(
            f"Idempotency-Key {key!r} was already used with a different request, which created dataset"
            f" {dataset_id!r}; use a new key for a different dataset",
            errors=[{"loc": ["header", "Idempotency-Key"], "msg": "already used with a different request"}],
        )
    try:
        return get_dataset(store, dataset_id, owner=owner)
    except NotFound:
        raise Conflict(
            f"Idempotency-Key {key!r} created dataset {dataset_id!r}, which has since been deleted;"
            " use a new key",
            errors=[{"loc": ["header", "Idempotency-Key"], "msg": "its dataset was deleted"}],
        ) from None


# ---- reading back -------------------------------------------------------------------------------


def dataset_json(record: DatasetRecord) -> dict[str, Any]:
    """The API's view of a dataset (the ``Dataset`` schema)."""
    return {
        "id": record.id,
        "name": record.name,
        "n_samples": record.n_samples,
        "n_features": record.n_features,
        "task": record.task,
        "classes": record.classes,
        "class_counts": record.class_counts,
        "sha256": record.sha256,
        "created_at": record.created_at,
        "source": record.source,
    }


def original_labels(record: DatasetRecord, y: Array) -> Array | list[Any]:
    """The stored y as the labels it was uploaded with: ``classes[y]`` for classification, else y."""
    if record.classes is None:
        return y
    if all(isinstance(c, str) for c in record.classes):
        return [record.classes[i] for i in y.tolist()]
    return np.asarray(record.classes)[y]


def load_data(store: Store, dataset_id: str, *, owner: str) -> tuple[DatasetRecord, Array, Array | list[Any]]:
    """A dataset's record, its X and its y as original labels."""
    record = get_dataset(store, dataset_id, owner=owner)
    X, y = load_dataset_arrays(store, dataset_id, owner=owner)
    return record, X, original_labels(record, y)


def csv_layout(record: DatasetRecord) -> tuple[list[str], int]:
    """The CSV header and the label column's position: a CSV upload's own, else x0..x{D-1} then y."""
    source = record.source or {}
    columns, label = source.get("columns"), source.get("label")
    if (
        source.get("kind") == "csv"
        and isinstance(columns, list)
        and len(columns) == record.n_features + 1
        and label in columns
    ):
        return [str(c) for c in columns], columns.index(label)
    return [*(f"x{i}" for i in range(record.n_features)), "y"], record.n_features


def csv_chunks(record: DatasetRecord, X: Array, labels: Array | list[Any]) -> Iterator[str]:
    """The dataset as CSV text in chunks: a header, then one row per sample (floats in shortest repr).

    Uploading the result again gives a dataset with the same arrays, and so the same sha256.
    """
    header, label_index = csv_layout(record)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    label_list = labels.tolist() if isinstance(labels, np.ndarray) else labels
    for start in range(0, X.shape[0], CSV_CHUNK_ROWS):
        for row, value in zip(
            X[start : start + CSV_CHUNK_ROWS].tolist(),
            label_list[start : start + CSV_CHUNK_ROWS],
            strict=True,
        ):
            row.insert(label_index, value)
            writer.writerow(row)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue()
