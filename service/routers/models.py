"""The /v1/models resource."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1/models", tags=["models"])
