"""Labels and tasks: infer (or check) a dataset's task from its labels and put them in stored form.

Classification labels are stored as int64 class *indices* 0..K-1 into the sorted original labels
(numbers or strings); regression targets as float64.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.errors import PayloadTooLarge, field_error, field_loc
from service.vocabulary import MAX_CLASS_NAME_LENGTH, TASKS

Array = np.ndarray[Any, Any]
Labels = Array | Sequence[str]

# Integer labels with more distinct values than this are taken for regression targets unless the
# task says otherwise; no classification dataset may have more classes than MAX_CLASSES.
INFER_MAX_CLASSES = 100
MAX_CLASSES = 1000
# Integers above 2**53 are not all representable in float64, so such "labels" are not trusted as classes.
_EXACT_INT = 2.0**53
# Class names are repeated in every list of datasets and models: each is short, and all of them together
# stay under the setting max_labels_kb.
LABELS_SETTING = "DESCENT_MAX_LABELS_KB"


def check_class_names(values: Labels, name: str, max_kb: int) -> None:
    """422 for a string label over ``MAX_CLASS_NAME_LENGTH`` characters, naming where the first one is;
    413 when the distinct names take more than ``max_kb`` KiB (UTF-8) together. Numbers pass.

    Parameters
    ----------
    values : ndarray or sequence
        The labels as sent, one per sample (or the classes of a model).
    name : str
        The field's name in messages, e.g. ``"y"``.
    max_kb : int
        The setting ``max_labels_kb``.
    """
    if isinstance(values, np.ndarray):
        if values.dtype.kind != "U" or values.ndim != 1:
            return
        lengths = np.char.str_len(values)
        long = np.flatnonzero(lengths > MAX_CLASS_NAME_LENGTH)
        first_long = int(long[0]) if len(long) else None
        distinct: Sequence[str] = [str(v) for v in np.unique(values)] if first_long is None else []
    else:
        strings = [v for v in values if isinstance(v, str)]
        if not strings:
            return
        first_long = next(
            (i for i, v in enumerate(values) if isinstance(v, str) and len(v) > MAX_CLASS_NAME_LENGTH), None
        )
        distinct = list(set(strings)) if first_long is None else []
    if first_long is not None:
        raise field_error(
            f"{name}[{first_long}]",
            f"is a class name of {len(values[first_long])} characters; the limit is {MAX_CLASS_NAME_LENGTH}",
        )
    size = sum(len(v.encode()) for v in distinct)
    if size > max_kb * 1024:
        raise PayloadTooLarge(
            f"{name}: the distinct class names take {size} bytes; the limit is {max_kb} KiB"
            f" (setting {LABELS_SETTING})",
            errors=[{"loc": field_loc(name), "msg": f"{size} bytes of class names is over {max_kb} KiB"}],
        )


@dataclass(frozen=True)
class EncodedLabels:
    """Labels in stored form.

    Attributes
    ----------
    task : {"binary", "multiclass", "multilabel", "regression"}
    y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
        int64 class indices (classification), int64 0/1 per label (multilabel) or float64 targets
        (regression, one or several per sample).
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
    values : ndarray of shape (n_samples,) or (n_samples, n_outputs), or sequence of str
        Numbers (any real or boolean dtype) or strings (a ``str`` dtype array or a list of ``str``);
        several columns are several 0/1 labels or several targets per sample.
    task : {"binary", "multiclass", "multilabel", "regression"} or None
        None infers it: strings → classification; integers with at most 2 distinct values → binary,
        3 to 100 → multiclass; anything else → regression. With several columns: all 0 or 1 →
        multilabel, anything else → regression.
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
    if values.ndim == 2:
        return _columns(values, task, name)
    if values.ndim != 1:
        raise field_error(name, f"must be 1-dimensional, got shape {list(values.shape)}")
    if task == "multilabel":
        raise field_error(
            name, "must have one column per label, shape (n_samples, n_labels), for task 'multilabel'"
        )
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


def _columns(values: Array, task: str | None, name: str) -> EncodedLabels:
    """y of shape (n_samples, n_outputs): 0/1 labels (multilabel) or real-valued targets (regression).

    None infers the task: multilabel when every value is 0 or 1 (or a boolean), else regression.
    """
    if values.shape[1] < 1:
        raise field_error(name, f"must have at least one column, got shape {list(values.shape)}")
    if task in ("binary", "multiclass"):
        raise field_error(
            name,
            f"must be 1-dimensional, one class label per sample, for task {task!r}, got shape"
            f" {list(values.shape)}; several 0/1 labels per sample make task 'multilabel'",
        )
    if values.dtype.kind == "b":
        values = values.astype(np.int64)
    if values.dtype.kind not in "iuf":
        raise field_error(name, f"must hold numbers when it has several columns, got dtype {values.dtype}")
    finite = np.isfinite(values)
    if not finite.all():
        row, col = (int(i) for i in np.argwhere(~finite)[0])
        raise field_error(f"{name}[{row}][{col}]", f"must be a finite number, got {values[row, col]}")
    binary = bool(np.all((values == 0) | (values == 1)))
    if task == "multilabel" and not binary:
        row, col = (int(i) for i in np.argwhere((values != 0) & (values != 1))[0])
        raise field_error(
            f"{name}[{row}][{col}]", f"must be 0 or 1 for task 'multilabel', got {values[row, col]}"
        )
    if task == "regression" or not binary:
        return EncodedLabels("regression", values.astype(np.float64), None, None)
    return EncodedLabels("multilabel", values.astype(np.int64), None, None)


def _plain_labels(values: Sequence[Any] | Array, name: str) -> Array | list[str]:
    """Labels held as Python objects: all strings (a list back) or all real numbers (a float64 array)."""
    flat = values.tolist() if isinstance(values, np.ndarray) else list(values)
    if all(isinstance(v, str) for v in flat):
        return flat
    if all(isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool) for v in flat):
        return np.asarray(flat, dtype=np.float64)
    raise field_error(name, "must hold only numbers or only strings, one label per sample")
