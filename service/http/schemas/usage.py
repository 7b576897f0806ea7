"""GET /v1/usage: what an owner uses, against its quotas."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Amounts(BaseModel):
    """Counts of one owner's resources, and the bytes they store."""

    jobs: int = Field(description="Queued, running and cancelling jobs.", examples=[2])
    datasets: int = Field(description="Stored datasets.", examples=[5])
    models: int = Field(description="Stored models.", examples=[3])
    stored_bytes: int = Field(description="Bytes of the datasets' and models' arrays.", examples=[1048576])


class Usage(BaseModel):
    """An owner's usage and quotas; a creation that would pass a quota gets 403 `quota-exceeded`."""

    owner: str = Field(description="The owner of the key that asked.", examples=["alice"])
    usage: Amounts = Field(
        description="What the owner uses now.",
        examples=[{"jobs": 2, "datasets": 5, "models": 3, "stored_bytes": 1048576}],
    )
    quotas: Amounts | None = Field(
        description="The most it may use (DESCENT_QUOTA_* settings, or the key's own limits); null with "
        "DESCENT_AUTH=none, where quotas do not apply.",
        examples=[{"jobs": 50, "datasets": 1000, "models": 1000, "stored_bytes": 4294967296}],
    )
