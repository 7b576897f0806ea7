"""The /v1/datasets resource."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])
