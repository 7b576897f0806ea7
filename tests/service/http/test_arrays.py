"""service.http.arrays and service.http.bytescan: arrays from JSON, and the byte count for large bodies."""

from __future__ import annotations

import math
import re

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.errors import InvalidInput
from service.http.arrays import to_array
from service.http.body import parse_json

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
shapes = st.lists(st.integers(1, 4), min_size=1, max_size=3)


@st.composite
def nested(draw: st.DrawFn) -> tuple[list, tuple[int, ...]]:
    shape = tuple(draw(shapes))
    flat = draw(
        st.lists(finite | st.integers(-(2**62), 2**62), min_size=math.prod(shape), max_size=math.prod(shape))
    )
    return np.array(flat, dtype=object).reshape(shape).tolist(), shape


@given(nested())
def test_to_array_equals_numpy_on_both_paths(value_and_shape: tuple[list, tuple[int, ...]]) -> None:
    value, shape = value_and_shape
    expected = np.array(value, dtype=np.float64)
    for scan in (True, False):
        arr = to_array(value, "x", max_elements=1000, scan_booleans=scan)
        assert arr.dtype == np.float64
        assert arr.shape == shape
        assert np.array_equal(arr, expected)


junk = st.sampled_from([True, False, None, "1", "", {}, {"a": 1}, ["x"], [True]])


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 9_999), junk, st.booleans())
def test_a_non_number_in_a_large_body_is_always_rejected(
    position: int, value: object, as_matrix: bool
) -> None:
    x: list = np.linspace(-1, 1, 10_000).tolist()
    x[position] = value
    body = {"x": [x[i : i + 10] for i in range(0, 10_000, 10)] if as_matrix else x, "flag": True, "name": "ü"}
    parsed = parse_json(orjson.dumps(body))
    # The byte count only vouches for a list it walked as a list of objects, and such a list cannot
    # convert to float64, so the exact checks run either way.
    leads_with_object = isinstance(value, dict) and position == 0 and not as_matrix
    assert parsed.scan_booleans is not leads_with_object
    with pytest.raises(InvalidInput, match=r"must be a number|ragged"):
        to_array(parsed.data["x"], "x", max_elements=10**6, scan_booleans=parsed.scan_booleans)


def test_the_byte_count_vouches_for_a_clean_large_body() -> None:
    body = {
        "model": {
            "type": "mlp",
            "layers": [{"units": 2, "activation": "tanh"}],
            "parameters": [{"bias": [0, 1]}],
        },
        "X": np.full((5_000, 5), 0.5).tolist(),
        "check": False,
        "loss": None,
        "note": "naïve",
    }
    assert parse_json(orjson.dumps(body)).scan_booleans is False
    assert parse_json(orjson.dumps(body, option=orjson.OPT_INDENT_2)).scan_booleans is False
    assert parse_json(orjson.dumps({**body, "x": [1.0] * 20_000})).scan_booleans is False


def test_small_bodies_always_get_the_exact_checks() -> None:
    assert parse_json(b'{"x": [1.0, 2.0]}').scan_booleans is True


def test_integers_beyond_int64_convert_and_beyond_float64_are_rejected() -> None:
    assert to_array([1, 2**70], "x", max_elements=10).tolist() == [1.0, float(2**70)]
    with pytest.raises(InvalidInput, match="beyond float64"):
        to_array([1, 10**400], "x", max_elements=10)
    with pytest.raises(InvalidInput, match="beyond float64"):
        to_array(10**400, "x", max_elements=10)


def test_non_finite_inputs_from_other_sources_are_rejected() -> None:
    with pytest.raises(InvalidInput, match="finite numbers only"):
        to_array([1.0, math.inf], "x", max_elements=10)
    for bad in ([math.nan, 1.0], [math.inf, -math.inf], [[1.0], [math.nan]]):
        with pytest.raises(InvalidInput, match="finite numbers only"):
            to_array(bad, "x", max_elements=10)


def test_finite_numbers_whose_sum_overflows_are_accepted() -> None:
    # The flat fast path proves finiteness by a finite sum; an overflowing one must not reject.
    assert to_array([1e308, 1e308, -1e308], "x", max_elements=10).tolist() == [1e308, 1e308, -1e308]
    assert to_array([10**308, 1e308], "x", max_elements=10).tolist() == [1e308, 1e308]


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ([1.0, True], "x[1] must be a number, got a boolean"),
        ([1.0, None], "x[1] must be a number, got null"),
        ([1.0, "2"], "x[1] must be a number, got a string"),
        ([1.0, [2.0]], "ragged"),
    ],
)
def test_flat_lists_with_anything_but_numbers_are_rejected(value: list, fragment: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(fragment)):
        to_array(value, "x", max_elements=10)
