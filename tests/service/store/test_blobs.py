from __future__ import annotations

import hashlib
import io
import math
import time
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from service.store.blobs import decode_npz, encode_npz
from service.store.db import check_id, jsonable, new_id

DTYPES = st.sampled_from([np.float64, np.float32, np.int64, np.int32, np.uint8, np.bool_, np.complex128])
ARRAYS = DTYPES.flatmap(lambda dtype: hnp.arrays(dtype, hnp.array_shapes(min_dims=0, max_dims=3, max_side=5)))


@settings(max_examples=60, deadline=None)
@given(
    arrays=st.dictionaries(st.sampled_from(["X", "y", "W0", "b0", "mean"]), ARRAYS, min_size=1, max_size=4)
)
def test_npz_round_trip_is_bit_exact(arrays: dict[str, np.ndarray]) -> None:
    decoded = decode_npz(encode_npz(arrays))
    assert list(decoded) == list(arrays)
    for name, array in arrays.items():
        assert decoded[name].dtype == array.dtype
        assert decoded[name].shape == array.shape
        assert decoded[name].tobytes() == array.tobytes()  # NaN payloads and -0.0 included


def test_npz_bytes_do_not_depend_on_the_time_of_writing(monkeypatch: pytest.MonkeyPatch) -> None:
    arrays = {"X": np.arange(6.0).reshape(3, 2), "y": np.array([0, 1, 1])}
    first = encode_npz(arrays)
    # Zip members can carry a modification time; the stored hashes need the time of writing left out.
    later = time.time() + 3 * 86400
    monkeypatch.setattr(time, "time", lambda: later)
    assert encode_npz(arrays) == first
    assert hashlib.sha256(encode_npz(arrays)).hexdigest() == hashlib.sha256(first).hexdigest()


def test_npz_is_readable_by_numpy_without_pickle() -> None:
    data = encode_npz({"X": np.eye(2), "y": np.array([1.5, -0.0])})
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        assert archive.files == ["X", "y"]
        np.testing.assert_array_equal(archive["X"], np.eye(2))
    assert zipfile.ZipFile(io.BytesIO(data)).namelist() == ["X.npy", "y.npy"]


def test_npz_refuses_object_arrays_and_bad_names() -> None:
    with pytest.raises(ValueError, match="dtype object"):
        encode_npz({"X": np.array([{"a": 1}], dtype=object)})
    with pytest.raises(ValueError, match="'a/b'"):
        encode_npz({"a/b": np.zeros(1)})
    with pytest.raises(ValueError, match="'file'"):
        encode_npz({"file": np.zeros(1)})


def test_ids_sort_in_creation_order_and_carry_their_prefix() -> None:
    ids = [new_id("job") for _ in range(200)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 200
    assert all(check_id("job", i) == i for i in ids)
    assert new_id("dataset").startswith("ds_") and new_id("model").startswith("mdl_")
    with pytest.raises(ValueError, match="must be a dataset id"):
        check_id("dataset", ids[0])


def test_jsonable_converts_numpy_values_and_drops_non_finite_floats() -> None:
    value = {"a": np.float32(0.5), "b": (np.int64(3), np.bool_(True)), "c": np.array([1.0, np.inf])}
    assert jsonable(value) == {"a": 0.5, "b": [3, True], "c": [1.0, None]}
    assert jsonable(math.nan) is None
    with pytest.raises(ValueError, match="cannot store a bytes"):
        jsonable(b"raw")
