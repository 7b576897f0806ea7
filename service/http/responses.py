"""JSON responses rendered by orjson, with NumPy arrays and scalars written natively, never NaN as null."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import orjson
from starlette.background import BackgroundTask
from starlette.responses import JSONResponse as StarletteJSONResponse

from service.errors import InvalidInput


def _default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return np.ascontiguousarray(obj).tolist() if obj.ndim else obj.item()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, tuple | set | frozenset):
        return list(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def dumps(content: Any) -> bytes:
    """Serialize with orjson; ndarrays are written natively (no ``.tolist()``)."""
    return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY, default=_default)


_JSON_CONTENT_TYPE = (b"content-type", b"application/json")


class JSONResponse(StarletteJSONResponse):
    """``application/json`` rendered by orjson, with NumPy arrays and scalars serialized natively."""

    def __init__(
        self,
        content: Any,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        background: BackgroundTask | None = None,
    ) -> None:
        if (
            headers is not None
            or media_type is not None
            or background is not None
            or not 200 <= status_code != 304
            or status_code == 204
        ):
            super().__init__(content, status_code, headers, media_type, background)
            return
        # The usual answer, with the two headers Starlette's init_headers would work out: a tenth
        # of a small compute call's own time less.
        self.status_code = status_code
        self.background = None
        self.body = body = dumps(content)
        self.raw_headers = [(b"content-length", str(len(body)).encode("latin-1")), _JSON_CONTENT_TYPE]

    def render(self, content: Any) -> bytes:
        return dumps(content)


def ensure_finite(content: Any) -> None:
    """Raise 422 when a result holds NaN or infinity (orjson would write ``null``), naming the field."""
    path = _non_finite_path(content)
    if path is not None:
        raise _not_finite(path)


_SCALARS = (str, int, bool, type(None))


def _non_finite_path(content: Any) -> list[str | int] | None:
    """The key/index path of the first NaN or infinity in ``content``, or None."""
    kind = type(content)
    if kind is np.ndarray:
        if content.dtype.kind in "fc" and not np.isfinite(content).all():
            return []
    elif kind is float or isinstance(content, np.floating):
        if not math.isfinite(content):
            return []
    elif kind is dict:
        for key, item in content.items():
            if type(item) not in _SCALARS and (sub := _non_finite_path(item)) is not None:
                return [key, *sub]
    elif kind is list or kind is tuple:
        for i, item in enumerate(content):
            if type(item) not in _SCALARS and (sub := _non_finite_path(item)) is not None:
                return [i, *sub]
    return None


def _not_finite(path: list[str | int]) -> InvalidInput:
    name = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".") or "the result"
    return InvalidInput(
        f"result is not finite: {name} overflowed float64 (NaN or infinity); use inputs of smaller magnitude",
        errors=[{"loc": ["response", *path], "msg": "is not finite (NaN or infinity)"}],
    )
