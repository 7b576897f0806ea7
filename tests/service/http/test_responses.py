"""service.http.responses: orjson rendering of NumPy values, and no NaN or infinity written as null."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest

from service.errors import InvalidInput
from service.http.responses import dumps, ensure_finite


def test_ensure_finite_names_the_first_bad_field() -> None:
    ensure_finite({"y": np.ones(3), "loss": 1.5, "shape": [3], "name": "x"})
    with pytest.raises(InvalidInput) as info:
        ensure_finite({"layers": [{"z": np.ones(2), "a": np.array([1.0, np.inf])}]})
    assert "layers[0].a" in info.value.detail
    assert info.value.errors == [
        {"loc": ["response", "layers", 0, "a"], "msg": "is not finite (NaN or infinity)"}
    ]
    with pytest.raises(InvalidInput, match="result is not finite: loss"):
        ensure_finite({"loss": math.nan})


def test_dumps_writes_arrays_and_numpy_scalars_without_tolist() -> None:
    content = {"a": np.arange(3.0), "b": np.float64(0.5), "c": np.ones((2, 2))[:, 0], "d": np.array(2.0)}
    assert orjson.loads(dumps(content)) == {"a": [0.0, 1.0, 2.0], "b": 0.5, "c": [1.0, 1.0], "d": 2.0}
