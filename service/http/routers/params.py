"""The ``{name}`` path parameter of the activation and loss routes, checked against a registry."""

from __future__ import annotations

from collections.abc import Collection

from starlette.requests import Request

from service.errors import field_error


def registry_name(request: Request, kind: str, allowed: Collection[str]) -> str:
    """The ``name`` path parameter, or 422 naming the unknown value and listing the allowed ones."""
    name: str = request.path_params["name"]
    if name not in allowed:
        msg = f"unknown {kind} {name!r}; allowed: {', '.join(allowed)}"
        raise field_error("name", msg, source="path", detail=msg)
    return name
