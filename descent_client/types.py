"""Typed results: the service's own response schemas, with methods that act through the client.

``Dataset``, ``Job`` and ``Model`` are the service's pydantic models (``service.http.schemas``)
with a reference to the client that fetched them, so that ``job.follow()``, ``model.predict(X)`` or
``dataset.data()`` read naturally. The ``Async…`` variants do the same through an ``AsyncClient``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self

import numpy as np
from pydantic import BaseModel, ConfigDict, PrivateAttr, field_serializer, field_validator

from descent_client import _arrays
from service.http.schemas import datasets as dataset_schemas
from service.http.schemas import jobs as job_schemas
from service.http.schemas import models as model_schemas

if TYPE_CHECKING:
    from descent_client._async import AsyncClient, AsyncFollow
    from descent_client._follow import Follow
    from descent_client._sync import Client

Array = np.ndarray[Any, Any]
JobMetrics = job_schemas.JobMetrics
DatasetPage = dataset_schemas.DatasetPage
JobPage = job_schemas.JobPage
ModelPage = model_schemas.ModelPage


class Prediction(model_schemas.Prediction):
    """Predictions as NumPy arrays: labels (numbers or strings) or values, and class probabilities."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    @field_validator("predictions", mode="after")
    @classmethod
    def _predictions(cls, value: Any) -> Array:
        if isinstance(value, np.ndarray):
            return value
        return _arrays.label_array(list(value))

    @field_validator("classes", mode="before")
    @classmethod
    def _classes(cls, value: Any) -> Any:
        return value.tolist() if isinstance(value, np.ndarray) else value

    @field_validator("probabilities", mode="after")
    @classmethod
    def _probabilities(cls, value: Any) -> Array | None:
        return None if value is None else np.asarray(value, dtype=np.float64)

    @field_serializer("predictions", "probabilities")
    def _as_lists(self, value: Array | None) -> list[Any] | None:
        return None if value is None else list(value.tolist())


class _Bound(BaseModel):
    """A result that remembers the client that fetched it."""

    _client: Any = PrivateAttr(default=None)

    def _bind(self, client: Any) -> Self:
        self._client = client
        return self


class Dataset(_Bound, dataset_schemas.Dataset):
    """A stored dataset."""

    def data(self) -> tuple[Array, Array]:
        """The dataset's X (float64, shape (n_samples, n_features)) and y (labels as uploaded)."""
        client: Client = self._client
        return client.datasets.data(self.id)

    def delete(self) -> None:
        client: Client = self._client
        client.datasets.delete(self.id)


class Job(_Bound, job_schemas.Job):
    """A training job, as last read; :meth:`refresh` reads it again."""

    @property
    def done(self) -> bool:
        """Whether the job has reached a terminal state (succeeded, failed or cancelled)."""
        return self.status in ("succeeded", "failed", "cancelled")

    def refresh(self) -> Job:
        """The job's current state (a new object)."""
        client: Client = self._client
        return client.jobs.get(self.id)

    def follow(self, *, last_event_id: int = 0, since_epoch: int = 0) -> Follow:
        """Status changes, every epoch once and in order, then the end (see ``Client.jobs.follow``)."""
        client: Client = self._client
        return client.jobs.follow(self.id, last_event_id=last_event_id, since_epoch=since_epoch)

    def wait(self, *, timeout: float | None = None, check: bool = True) -> Job:
        """Block until the job ends and return it; ``JobFailed`` unless it succeeded (with ``check``)."""
        client: Client = self._client
        return client.jobs.wait(self.id, timeout=timeout, check=check)

    def cancel(self) -> Job:
        client: Client = self._client
        return client.jobs.cancel(self.id)

    def history(self, *, since_epoch: int | None = None, max_points: int | None = None) -> JobMetrics:
        """The per-epoch metric history (``metrics`` is the latest epoch's), downsampled to ``max_points``."""
        client: Client = self._client
        return client.jobs.metrics(self.id, since_epoch=since_epoch, max_points=max_points)

    def model(self) -> Model:
        """The model the job produced; ``ValueError`` when it has none (yet)."""
        if self.model_id is None:
            raise ValueError(f"job {self.id} has no model (status {self.status})")
        client: Client = self._client
        return client.models.get(self.model_id)


class Model(_Bound, model_schemas.Model):
    """A trained or imported model."""

    def predict(self, X: Any) -> Prediction:
        """Predictions for the rows of ``X`` (array-like of shape (n_samples, n_features))."""
        client: Client = self._client
        return client.models.predict(self.id, X)

    def export(self, format: Literal["json", "npz"] = "json", path: str | Path | None = None) -> bytes:
        """The model's export (JSON document or ``.npz`` bytes), also written to ``path`` when given."""
        client: Client = self._client
        return client.models.export(self.id, format=format, path=path)

    def delete(self) -> None:
        client: Client = self._client
        client.models.delete(self.id)


class AsyncDataset(_Bound, dataset_schemas.Dataset):
    """A stored dataset (async client)."""

    async def data(self) -> tuple[Array, Array]:
        client: AsyncClient = self._client
        return await client.datasets.data(self.id)

    async def delete(self) -> None:
        client: AsyncClient = self._client
        await client.datasets.delete(self.id)


class AsyncJob(_Bound, job_schemas.Job):
    """A training job (async client)."""

    @property
    def done(self) -> bool:
        return self.status in ("succeeded", "failed", "cancelled")

    async def refresh(self) -> AsyncJob:
        client: AsyncClient = self._client
        return await client.jobs.get(self.id)

    def follow(self, *, last_event_id: int = 0, since_epoch: int = 0) -> AsyncFollow:
        """``async for update in job.follow()``: as the sync ``follow``."""
        client: AsyncClient = self._client
        return client.jobs.follow(self.id, last_event_id=last_event_id, since_epoch=since_epoch)

    async def wait(self, *, timeout: float | None = None, check: bool = True) -> AsyncJob:
        client: AsyncClient = self._client
        return await client.jobs.wait(self.id, timeout=timeout, check=check)

    async def cancel(self) -> AsyncJob:
        client: AsyncClient = self._client
        return await client.jobs.cancel(self.id)

    async def history(self, *, since_epoch: int | None = None, max_points: int | None = None) -> JobMetrics:
        client: AsyncClient = self._client
        return await client.jobs.metrics(self.id, since_epoch=since_epoch, max_points=max_points)

    async def model(self) -> AsyncModel:
        if self.model_id is None:
            raise ValueError(f"job {self.id} has no model (status {self.status})")
        client: AsyncClient = self._client
        return await client.models.get(self.model_id)


class AsyncModel(_Bound, model_schemas.Model):
    """A trained or imported model (async client)."""

    async def predict(self, X: Any) -> Prediction:
        client: AsyncClient = self._client
        return await client.models.predict(self.id, X)

    async def export(self, format: Literal["json", "npz"] = "json", path: str | Path | None = None) -> bytes:
        client: AsyncClient = self._client
        return await client.models.export(self.id, format=format, path=path)

    async def delete(self) -> None:
        client: AsyncClient = self._client
        await client.models.delete(self.id)
