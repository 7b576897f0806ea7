"""Exports of a model: a ``descent.model/v1`` JSON document, or ``.npz`` (arrays in their dtype).

Both import again to bit-for-bit the same parameters (see ``importing``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from service.http.schemas.models import MODEL_FORMAT
from service.services.models.access import LoadedModel
from service.store import encode_npz

NPZ_META = "meta"  # the .npz member holding everything but the arrays, as JSON bytes


def _meta(model: LoadedModel) -> dict[str, Any]:
    record = model.record
    return {
        "format": MODEL_FORMAT,
        "architecture": record.architecture,
        "n_features": record.n_features,
        "task": record.task,
        "classes": record.classes,
        "standardization": record.standardization,
        "dtype": model.dtype,
        "metrics": record.metrics,
    }


def export_document(model: LoadedModel) -> dict[str, Any]:
    """The model as a ``descent.model/v1`` JSON document.

    float32 parameters are written as float64 numbers, i.e. the exact decimal of each float32, so
    that reading them back and rounding to float32 gives the same bits (a shortest float32 repr
    read as float64 and rounded again need not).
    """
    parameters = {name: array.astype(np.float64) for name, array in model.arrays.items()}
    return {**_meta(model), "parameters": parameters}


def export_npz(model: LoadedModel) -> bytes:
    """The model as ``.npz`` bytes: arrays W0, b0, … in their dtype, the rest as JSON in member ``meta``."""
    meta = np.frombuffer(orjson.dumps(_meta(model)), dtype=np.uint8)
    return encode_npz({NPZ_META: meta, **model.arrays})
