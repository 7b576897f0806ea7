"""Response models of a running job's snapshot: its latest parameters, and predictions with them."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from service.http.schemas.models import ModelDocument, Prediction

_JOB_ID_EXAMPLE = "job_0194b2c3d4e5f6a7b8c9d0e1"


class JobSnapshot(BaseModel):
    """A job's parameters as of its latest progress write, as a model document."""

    job_id: str = Field(description="The job.", examples=[_JOB_ID_EXAMPLE])
    epoch: int = Field(description="Epochs completed when the parameters were taken.", examples=[120])
    taken_at: datetime = Field(
        description="When they were written (RFC 3339, UTC).", examples=["2025-01-31T12:00:00.123456+00:00"]
    )
    model: ModelDocument = Field(
        description="The model at that epoch in the export format (`descent.model/v1`, empty metrics):"
        " POST /v1/models imports it as it is."
    )


class SnapshotPrediction(Prediction):
    """Predictions with a job's latest parameters, and the epoch they are from."""

    epoch: int = Field(description="Epochs completed when the parameters were taken.", examples=[120])
