"""CSV, both ways: parse an upload (a header row, then one sample per row) and write a dataset back out.

Parsing streams: rows are read one at a time with the standard ``csv`` module and converted to float64
in chunks, so the text is never held as one list of rows, and the dataset limits apply while reading.
Writing gives text that parses back to the same arrays, and so the same sha256.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from service.errors import InvalidInput
from service.services.datasets.labels import Array, Labels
from service.services.datasets.limits import check_dataset_size
from service.settings import Settings
from service.store import DatasetRecord

if TYPE_CHECKING:
    from _csv import Reader as CSVReader

# Rows converted to float64 per NumPy call while a CSV streams in, and written per chunk on the way out.
CSV_CHUNK_ROWS = 4096


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
        header = _read_header(reader, label, settings)
        X, labels = _read_rows(reader, header, settings)
    except csv.Error as exc:
        raise _csv_error(f"malformed at line {reader.line_num}: {exc}") from None
    except UnicodeDecodeError as exc:
        raise _csv_error(f"is not valid UTF-8 text ({exc.reason} at byte {exc.start} of a block)") from None
    return CSVTable(X, _csv_labels(labels, header.label), header.columns, header.label)


@dataclass(frozen=True)
class _Header:
    columns: list[str]
    label: str
    label_index: int
    features: list[str]


def _read_header(reader: CSVReader, label: str | None, settings: Settings) -> _Header:
    """The first non-blank row: distinct column names, among them the label column, and a feature."""
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
    features = [c for c in columns if c != label]
    check_dataset_size(settings, 0, len(features))
    return _Header(columns, label, columns.index(label), features)


def _read_rows(reader: CSVReader, header: _Header, settings: Settings) -> tuple[Array, list[str]]:
    """The feature rows as float64 (converted ``CSV_CHUNK_ROWS`` at a time) and the label strings."""
    n_columns, n_features = len(header.columns), len(header.features)
    max_rows = min(settings.max_dataset_rows, settings.max_dataset_elements // n_features)
    blocks: list[Array] = []
    labels: list[str] = []
    chunk: list[list[str]] = []
    chunk_lines: list[int] = []
    for row in reader:
        if not row:
            continue
        n = len(labels) + 1  # this row's number, counting data rows from 1
        if len(row) != n_columns:
            raise _csv_error(
                f"row {n} (line {reader.line_num}) has {len(row)} fields but the header has {n_columns}",
                ("body", n),
            )
        if n > max_rows:
            check_dataset_size(settings, n, n_features)
        value = row.pop(header.label_index)
        if not value.strip():
            raise _csv_error(
                f"row {n} (line {reader.line_num}) has an empty label in column {header.label!r}",
                ("body", n, header.label),
            )
        labels.append(value)
        chunk.append(row)
        chunk_lines.append(reader.line_num)
        if len(chunk) == CSV_CHUNK_ROWS:
            blocks.append(_csv_block(chunk, chunk_lines, len(labels) - len(chunk), header.features))
            chunk, chunk_lines = [], []
    if chunk:
        blocks.append(_csv_block(chunk, chunk_lines, len(labels) - len(chunk), header.features))
    if not labels:
        raise _csv_error("has a header but no data rows")
    return (np.concatenate(blocks) if len(blocks) > 1 else blocks[0]), labels


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


_EXACT_INTEGER_LIMIT = 2**53


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
    if len(values) and float(np.abs(values).max()) >= _EXACT_INTEGER_LIMIT:
        for row, text in enumerate(labels, start=1):
            # 2**53 + 1 would silently become 2**53 as a float64: another label. Keep it a string instead.
            if _is_integer(text) and abs(int(text)) > _EXACT_INTEGER_LIMIT:
                raise _csv_error(
                    f"row {row}, label column {label!r}: the integer {text.strip()} is beyond ±2^53"
                    f" ({_EXACT_INTEGER_LIMIT}), which a float64 label cannot hold exactly",
                    ("body", row, label),
                )
    return values


def _is_integer(text: str) -> bool:
    digits = text.strip().lstrip("+-")
    return digits.isdigit() and digits.isascii()


# ---- writing ---------------------------------------------------------------------------------


DEFAULT_LABEL = "y"


def feature_columns(n_features: int) -> list[str]:
    """The CSV names of the features of a dataset that was not a CSV upload: x0 .. x{D-1}."""
    return [f"x{i}" for i in range(n_features)]


def label_columns(label: str, n_outputs: int) -> list[str]:
    """The CSV names of a dataset's label columns: ``label``, or label0 .. label{k-1} for k outputs."""
    return [label] if n_outputs == 1 else [f"{label}{j}" for j in range(n_outputs)]


def named_columns(label: str, n_features: int, n_outputs: int) -> list[str]:
    """The CSV header of a dataset that was not a CSV upload, its label column(s) named after ``label``.

    Raises
    ------
    InvalidInput
        422 at the ``label`` query parameter when a label column would take a feature column's name,
        or when ``label`` begins or ends with whitespace (a CSV header's names are read without it).
    """
    if label != label.strip():
        raise _label_error(f"label {label!r} begins or ends with whitespace, which a CSV header drops")
    features = feature_columns(n_features)
    labels = label_columns(label, n_outputs)
    clashes = sorted(set(features) & set(labels), key=labels.index)
    if clashes:
        named = f"label {label!r}" if labels == [label] else f"label {label!r} (columns {', '.join(labels)})"
        raise _label_error(
            f"{named} clashes with feature column(s) {', '.join(clashes)}; the features are"
            f" x0 .. x{n_features - 1}"
        )
    return [*features, *labels]


def _label_error(msg: str) -> InvalidInput:
    return InvalidInput(f"query parameter {msg}", errors=[{"loc": ["query", "label"], "msg": msg}])


def csv_layout(record: DatasetRecord) -> tuple[list[str], int]:
    """The CSV header and the position of the (first) label column.

    The header stored with the dataset (``source["columns"]``, with ``source["label"]``): a CSV upload's
    own, or the one a ``label`` query parameter named. Otherwise x0..x{D-1} then y, or y0..y{k-1} with
    several outputs.
    """
    source = record.source or {}
    columns, label = source.get("columns"), source.get("label")
    if isinstance(columns, list) and len(columns) == record.n_features + record.n_outputs:
        if record.n_outputs > 1:  # label0 .. label{k-1}, after the features
            return [str(c) for c in columns], record.n_features
        if label in columns:  # one label column, anywhere (a CSV upload's)
            return [str(c) for c in columns], columns.index(label)
    header = [*feature_columns(record.n_features), *label_columns(DEFAULT_LABEL, record.n_outputs)]
    return header, record.n_features


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
            if isinstance(value, list):
                row[label_index:label_index] = value
            else:
                row.insert(label_index, value)
            writer.writerow(row)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue()
