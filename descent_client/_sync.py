"""The synchronous client: ``Client`` and its ``datasets``, ``jobs`` and ``models`` namespaces."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import httpx
from pydantic import BaseModel

from descent_client import _calls
from descent_client._calls import Call, Page
from descent_client._compute import Compute
from descent_client._follow import Follow
from descent_client.errors import JobFailed, error_from_response
from descent_client.events import FollowState
from descent_client.types import Array, Dataset, Job, JobMetrics, Model, Prediction

B = TypeVar("B", Dataset, Job, Model)
USER_AGENT = "descent-client/0.1"


class Client:
    """A client of the Descent service.

    Parameters
    ----------
    url : str, optional
        The service's base URL (default: ``DESCENT_URL``, else http://127.0.0.1:8000).
    api_key : str, optional
        Sent as ``Authorization: Bearer <key>`` (default: ``DESCENT_API_KEY``, else no key).
    timeout : float
        Seconds to wait for each request (connect, read, write).
    retries : int
        Attempts after the first for a request that may be retried (see ``_calls.Call.retry``).
    reconnect_timeout : float
        How long ``follow`` and ``wait`` keep reconnecting while the service cannot be reached.
    transport : httpx.BaseTransport, optional
        For tests and special set-ups (e.g. ``httpx.MockTransport``, a proxy).

    Examples
    --------
    >>> with Client() as client:                                     # doctest: +SKIP
    ...     data = client.datasets.generate("xor", n_samples=400, seed=1)
    ...     job = client.jobs.create(dataset=data, model={"type": "mlp", "hidden_layers": [16]})
    ...     job.wait().model().predict([[0.5, -0.5]]).predictions
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        reconnect_timeout: float = 120.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = _calls.resolve_url(url)
        self.retries = retries
        self.timeout = timeout
        self.reconnect_timeout = reconnect_timeout
        self._http = httpx.Client(
            base_url=self.url,
            headers=_calls.base_headers(_calls.resolve_key(api_key), USER_AGENT),
            timeout=timeout,
            transport=transport,
        )
        self.datasets = Datasets(self)
        self.jobs = Jobs(self)
        self.models = Models(self)
        self.compute = Compute(self)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    def send(self, call: Call) -> httpx.Response:
        """Send ``call``, retrying as it allows; the response, or the ``APIError`` of its status."""
        attempt = 0
        while True:
            try:
                response = self._http.request(
                    call.method, call.path, params=call.params, content=call.content, headers=call.headers
                )
            except httpx.TransportError as exc:
                delay = _calls.delay_after_error(call, self.url, attempt, self.retries, exc)
            else:
                retry = _calls.delay_after_response(call, attempt, self.retries, response)
                if retry is None:
                    return response
                delay = retry
            time.sleep(delay)
            attempt += 1

    def json(self, call: Call) -> Any:
        return self.send(call).json()

    @contextlib.contextmanager
    def stream_lines(self, call: Call, read_timeout: float) -> Iterator[Iterator[str]]:
        """The lines of a streamed response (the ``APIError`` of its status when it fails)."""
        timeout = httpx.Timeout(self.timeout, read=read_timeout)
        with self._http.stream(call.method, call.path, headers=call.headers, timeout=timeout) as response:
            if response.is_error:
                response.read()
                raise error_from_response(response)
            yield response.iter_lines()

    def bind(self, kind: type[B], document: Any) -> B:
        return kind.model_validate(document)._bind(self)

    def page(self, kind: type[B], call: Call) -> Page[B]:
        body = self.json(call)
        return Page([self.bind(kind, item) for item in body["items"]], body.get("next_cursor"))

    def pages(self, kind: type[B], resource: str, page_size: int, **query: Any) -> Iterator[B]:
        cursor: str | None = None
        while True:
            page = self.page(kind, _calls.list_call(resource, page_size, cursor, **query))
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor


class Datasets:
    """``client.datasets``: create (arrays, CSV, .npz, generators), list, get, read, delete."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def create(
        self,
        X: Any,
        y: Any,
        *,
        name: str = "arrays",
        task: str | None = None,
        label: str | None = None,
        idempotency_key: str | None = None,
    ) -> Dataset:
        """A dataset from arrays: X (n_samples, n_features), y labels (numbers or strings) or targets.

        ``task`` overrides the inferred task; ``label`` names the label column of the dataset's CSV form
        (default: y), whose features are x0 .. x{D-1}.
        """
        call = _calls.dataset_from_arrays(X, y, idempotency_key, name=name, task=task, label=label)
        return self._create(call)

    def generate(
        self,
        kind: str,
        *,
        n_samples: int = 200,
        noise: float = 0.1,
        seed: int = 0,
        n_classes: int | None = None,
        n_features: int | None = None,
        name: str | None = None,
        task: str | None = None,
        label: str | None = None,
        idempotency_key: str | None = None,
    ) -> Dataset:
        """A dataset drawn from a seeded generator: linear, xor, circles, moons, spiral or blobs.

        ``task`` overrides the generator's (e.g. 'regression' on xor's 0/1 labels); ``label`` names the
        label column of the dataset's CSV form.
        """
        spec = {"kind": kind, "n_samples": n_samples, "noise": noise, "seed": seed}
        spec.update({k: v for k, v in {"n_classes": n_classes, "n_features": n_features}.items() if v})
        body = {"name": name or f"{kind}-{n_samples}", "generator": spec}
        return self._create(_calls.dataset_json(body, idempotency_key, task=task, label=label))

    def from_json(
        self,
        body: Mapping[str, Any],
        *,
        name: str | None = None,
        label: str | None = None,
        task: str | None = None,
        idempotency_key: str | None = None,
    ) -> Dataset:
        """A dataset from a DatasetCreate document: ``{"name"?, "X", "y"}`` or ``{"name"?, "generator"}``.

        ``name`` and ``task``, when given, take the place of the document's; ``label`` names the label
        column of the dataset's CSV form.
        """
        call = _calls.dataset_json(body, idempotency_key, name=name, label=label, task=task)
        return self._create(call)

    def from_csv(
        self,
        source: str | Path | bytes,
        *,
        label: str | None = None,
        name: str | None = None,
        task: str | None = None,
        idempotency_key: str | None = None,
    ) -> Dataset:
        """A dataset from a CSV file or its bytes: a header row, numeric features, the label column
        ``label`` (default: the last)."""
        call = _calls.dataset_file(source, "csv", name=name, key=idempotency_key, label=label, task=task)
        return self._create(call)

    def from_npz(
        self,
        source: str | Path | bytes,
        *,
        name: str | None = None,
        label: str | None = None,
        task: str | None = None,
        idempotency_key: str | None = None,
    ) -> Dataset:
        """A dataset from an ``.npz`` archive (file or bytes) holding arrays ``X`` and ``y``; ``label``
        names the label column of its CSV form (default: y)."""
        call = _calls.dataset_file(source, "npz", name=name, key=idempotency_key, label=label, task=task)
        return self._create(call)

    def _create(self, call: Call) -> Dataset:
        return self._client.bind(Dataset, self._client.json(call))

    def get(self, dataset_id: str) -> Dataset:
        return self._client.bind(Dataset, self._client.json(_calls.get_call("datasets", dataset_id)))

    def list(self, *, limit: int | None = None, cursor: str | None = None) -> Page[Dataset]:
        """One page, newest first; pass ``next_cursor`` back as ``cursor`` for the next."""
        return self._client.page(Dataset, _calls.list_call("datasets", limit, cursor))

    def iter(self, *, page_size: int = 100) -> Iterator[Dataset]:
        """Every dataset, newest first, page after page."""
        return self._client.pages(Dataset, "datasets", page_size)

    def data(self, dataset_id: str) -> tuple[Array, Array]:
        """X (float64, shape (n_samples, n_features)) and y (the labels as uploaded, or targets)."""
        return _calls.dataset_arrays(self._client.send(_calls.dataset_data(dataset_id)))

    def delete(self, dataset_id: str) -> None:
        self._client.send(_calls.delete_call("datasets", dataset_id))


class Jobs:
    """``client.jobs``: create, get, list, follow, wait, cancel, metrics."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def create(
        self,
        config: BaseModel | Mapping[str, Any] | None = None,
        /,
        *,
        idempotency_key: str | None = None,
        **fields: Any,
    ) -> Job:
        """Queue a training job from a TrainingConfig (a mapping or the model) and/or its fields.

        ``dataset`` may be a :class:`Dataset` (sent as its id), or inline data (``{"X", "y"}`` arrays or
        ``{"generator": {...}}``). An Idempotency-Key (a new one unless given) makes retries after a lost
        connection return the job already created rather than a second one.
        """
        body = _calls.training_body(config, fields)
        return self._client.bind(Job, self._client.json(_calls.create_job(body, idempotency_key)))

    def dry_run(
        self, config: BaseModel | Mapping[str, Any] | None = None, /, **fields: Any
    ) -> dict[str, Any]:
        """The resolved configuration (defaults filled, seed chosen) without queueing anything."""
        body = _calls.training_body(config, fields)
        result: dict[str, Any] = self._client.json(_calls.create_job(body, None, dry_run=True))
        return result

    def get(self, job_id: str) -> Job:
        return self._client.bind(Job, self._client.json(_calls.get_call("jobs", job_id)))

    def list(
        self, *, status: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> Page[Job]:
        return self._client.page(Job, _calls.list_call("jobs", limit, cursor, status=status))

    def iter(self, *, status: str | None = None, page_size: int = 100) -> Iterator[Job]:
        return self._client.pages(Job, "jobs", page_size, status=status)

    def cancel(self, job_id: str) -> Job:
        """Ask the job to stop (a running one passes through ``cancelling``); 409 when it has ended."""
        return self._client.bind(Job, self._client.json(_calls.cancel_job(job_id)))

    def metrics(
        self, job_id: str, *, since_epoch: int | None = None, max_points: int | None = None
    ) -> JobMetrics:
        return JobMetrics.model_validate(
            self._client.json(_calls.job_metrics(job_id, since_epoch, max_points))
        )

    def follow(self, job_id: str, *, last_event_id: int = 0, since_epoch: int = 0) -> Follow:
        """Iterate over the job's updates (see :class:`Follow`) until it ends.

        Parameters
        ----------
        last_event_id : int
            Resume after this event (0: from the job's first event).
        since_epoch : int
            Yield only the epochs after this one.
        """
        return Follow(self._client, job_id, FollowState(last_event_id, since_epoch))

    def wait(self, job_id: str, *, timeout: float | None = None, check: bool = True) -> Job:
        """Block until the job ends (``TimeoutError`` after ``timeout`` seconds) and return it.

        With ``check``, a job that did not succeed raises :class:`JobFailed` (it holds the job).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        for _ in Follow(self._client, job_id, FollowState(epochs=False), deadline):
            pass
        job = self.get(job_id)
        if check and job.status != "succeeded":
            raise JobFailed(job)
        return job


class Models:
    """``client.models``: list, get, predict, export, import, delete."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def get(self, model_id: str, *, parameters: bool = False) -> Model:
        """The model; with ``parameters``, its dtype and weight arrays too."""
        call = _calls.get_call("models", model_id, include="parameters" if parameters else None)
        return self._client.bind(Model, self._client.json(call))

    def list(self, *, limit: int | None = None, cursor: str | None = None) -> Page[Model]:
        return self._client.page(Model, _calls.list_call("models", limit, cursor))

    def iter(self, *, page_size: int = 100) -> Iterator[Model]:
        return self._client.pages(Model, "models", page_size)

    def predict(self, model_id: str, X: Any = None, *, dataset_id: str | None = None) -> Prediction:
        """Predictions for the rows of X (raw features), or for a stored dataset's X."""
        call = _calls.predict(model_id, X, dataset_id)
        return Prediction.model_validate(_calls.answer(self._client.send(call)))

    def export(
        self, model_id: str, *, format: Literal["json", "npz"] = "json", path: str | Path | None = None
    ) -> bytes:
        """The model's export (``descent.model/v1`` JSON or ``.npz``), written to ``path`` if given."""
        content = self._client.send(_calls.export_model(model_id, format)).content
        if path is not None:
            Path(path).write_bytes(content)
        return content

    def import_(
        self, source: str | Path | bytes | Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> Model:
        """Store a model from an export: a path (.json or .npz), its bytes, or the JSON document.

        A retry (after a lost answer, or sent again with the same ``idempotency_key``) stores no second copy.
        """
        return self._client.bind(Model, self._client.json(_calls.import_model(source, idempotency_key)))

    def delete(self, model_id: str) -> None:
        self._client.send(_calls.delete_call("models", model_id))
