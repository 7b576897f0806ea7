"""service.http.npy: a body is trusted only after its header; round trips are exact."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from service.http import npy


def _saved(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


@given(
    hnp.arrays(
        dtype=st.sampled_from([np.float64, np.float32, np.int64, np.int32, np.uint8, np.bool_]),
        shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5),
    )
)
def test_dumps_then_loads_round_trips_exactly_and_agrees_with_numpy(array: np.ndarray) -> None:
    body = npy.dumps(array)
    assert body == _saved(array)  # byte for byte what np.save writes
    back = npy.loads(body)
    assert back.dtype == array.dtype and back.shape == array.shape
    np.testing.assert_array_equal(back, array)


def test_fortran_order_and_big_endian_bodies_load_as_written() -> None:
    a = np.asfortranarray(np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(npy.loads(_saved(a)), a)
    b = np.arange(4, dtype=">f8")
    np.testing.assert_array_equal(npy.loads(_saved(b)), b)


def test_a_header_claiming_more_than_the_body_holds_is_refused_before_allocating() -> None:
    # A 1e12-element claim with 16 bytes of data: np.load would try to allocate 7.3 TiB first.
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)})
    body = header.getvalue() + b"\0" * 16
    with pytest.raises(npy.NpyError, match="truncated: shape \\[1000000000000\\] of float64 needs"):
        npy.loads(body)
    with pytest.raises(npy.NpyError, match="1000000000000 elements; at most 100 are accepted"):
        npy.loads(body, max_elements=100)


def test_an_overflowing_shape_is_refused() -> None:
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (2**64, 2)}
    )
    with pytest.raises(npy.NpyError, match="truncated"):
        npy.loads(header.getvalue())


def test_trailing_bytes_are_refused() -> None:
    with pytest.raises(
        npy.NpyError, match="trailing bytes: shape \\[3\\] of float64 needs 24 bytes of data, got 25"
    ):
        npy.loads(_saved(np.zeros(3)) + b"x")


@pytest.mark.parametrize(
    ("array", "name"),
    [
        (np.array([1 + 2j]), "'<c16'"),
        (np.array(["ab"]), "'<U2'"),
        (np.zeros(2, dtype=[("a", "<f8")]), "[('a', '<f8')]"),
        (np.array([1.0], dtype=np.float16), "'<f2'"),
    ],
)
def test_dtypes_outside_the_allowlist_are_refused(array: np.ndarray, name: str) -> None:
    with pytest.raises(npy.NpyError, match="has dtype"):
        npy.loads(_saved(array))


def test_object_arrays_are_refused_without_unpickling() -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(
        npy.NpyError, match="holds Python objects \\(dtype object\\), which are never unpickled"
    ):
        npy.loads(buffer.getvalue())


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "does not start with the magic string"),
        (b"PK\x03\x04rest", "does not start with the magic string"),
        (b"\x93NUMPY\x03\x00\x10\x00", "format version 3.0"),
        (b"\x93NUMPY\x01\x00\xff\xff", "65535-byte .npy header"),
        (b"\x93NUMPY\x01\x00\x10\x00{'descr'", "truncated .npy array: the header is incomplete"),
        (b"\x93NUMPY\x01\x00\x0a\x00not a dict", "malformed .npy header"),
    ],
)
def test_bodies_that_are_not_npy_are_named(body: bytes, message: str) -> None:
    with pytest.raises(npy.NpyError, match=message.replace(".", "\\.").replace("(", "\\(")):
        npy.loads(body)


def test_the_number_of_dimensions_is_checked() -> None:
    with pytest.raises(npy.NpyError, match="has 1 dimensions \\(shape \\[3\\]\\); expected 2"):
        npy.loads(_saved(np.zeros(3)), ndim=2)
    assert npy.loads(_saved(np.zeros((2, 2))), ndim=(1, 2)).shape == (2, 2)


def test_loaded_arrays_are_read_only_views_of_the_body() -> None:
    a = npy.loads(_saved(np.arange(3.0)))
    assert not a.flags.writeable
