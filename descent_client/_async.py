"""The asynchronous client: ``AsyncClient``, the same operations as ``Client`` with ``await``."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import anyio
import httpx
from pydantic import BaseModel

from descent_client import _calls
from descent_client._calls import Call, Page
from descent_client._compute import AsyncCompute
from descent_client._sync import USER_AGENT
from descent_client.errors import JobFailed, error_from_response
from descent_client.events import FollowState, SSEDecoder, Update, history_rows
from descent_client.types import Array, AsyncDataset, AsyncJob, AsyncModel, JobMetrics, Prediction

B = TypeVar("B", AsyncDataset, AsyncJob, AsyncModel)


class AsyncClient:
    """The asynchronous client of the Descent service; the parameters are those of ``Client``.

    Use it as ``async with AsyncClient() as client:`` or call ``await client.aclose()``.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        reconnect_timeout: float = 120.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = _calls.resolve_url(url)
        self.retries = retries
        self.timeout = timeout
        self.reconnect_timeout = reconnect_timeout
        self._http = httpx.AsyncClient(
            base_url=self.url,
            headers=_calls.base_headers(_calls.resolve_key(api_key), USER_AGENT),
            timeout=timeout,
            transport=transport,
        )
        self.datasets = AsyncDatasets(self)
        self.jobs = AsyncJobs(self)
        self.models = AsyncModels(self)
        self.compute = AsyncCompute(self)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"AsyncClient({self.url!r})"

    async def send(self, call: Call) -> httpx.Response:
        """Send ``call``, retrying as it allows; the response, or the ``APIError`` of its status."""
        attempt = 0
        while True:
            try:
                response = await self._http.request(
                    call.method, call.path, params=call.params, content=call.content, headers=call.headers
                )
            except httpx.TransportError as exc:
                delay = _calls.delay_after_error(call, self.url, attempt, self.retries, exc)
            else:
                retry = _calls.delay_after_response(call, attempt, self.retries, response)
                if retry is None:
                    return response
                delay = retry
            await anyio.sleep(delay)
            attempt += 1

    async def json(self, call: Call) -> Any:
        return (await self.send(call)).json()

    @contextlib.asynccontextmanager
    async def stream_lines(self, call: Call, read_timeout: float) -> AsyncIterator[AsyncIterator[str]]:
        timeout = httpx.Timeout(self.timeout, read=read_timeout)
        async with self._http.stream(
            call.method, call.path, headers=call.headers, timeout=timeout
        ) as response:
            if response.is_error:
                await response.aread()
                raise error_from_response(response)
            yield response.aiter_lines()

    def bind(self, kind: type[B], document: Any) -> B:
        return kind.model_validate(document)._bind(self)

    async def page(self, kind: type[B], call: Call) -> Page[B]:
        body = await self.json(call)
        return Page([self.bind(kind, item) for item in body["items"]], body.get("next_cursor"))

    async def pages(self, kind: type[B], resource: str, page_size: int, **query: Any) -> AsyncIterator[B]:
        cursor: str | None = None
        while True:
            page = await self.page(kind, _calls.list_call(resource, page_size, cursor, **query))
            for item in page.items:
                yield item
            if page.next_cursor is None:
                return
            cursor = page.next_cursor


class AsyncDatasets:
    """``client.datasets`` of the async client (see ``Client.datasets``)."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def create(
        self,
        X: Any,
        y: Any,
        *,
        name: str = "arrays",
        task: str | None = None,
        label: str | None = None,
        idempotency_key: str | None = None,
    ) -> AsyncDataset:
        call = _calls.dataset_from_arrays(X, y, idempotency_key, name=name, task=task, label=label)
        return await self._create(call)

    async def generate(
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
    ) -> AsyncDataset:
        spec = {"kind": kind, "n_samples": n_samples, "noise": noise, "seed": seed}
        spec.update({k: v for k, v in {"n_classes": n_classes, "n_features": n_features}.items() if v})
        body = {"name": name or f"{kind}-{n_samples}", "generator": spec}
        return await self._create(_calls.dataset_json(body, idempotency_key, task=task, label=label))

    async def from_json(
        self,
        body: Mapping[str, Any],
        *,
        name: str | None = None,
        label: str | None = None,
        task: str | None = None,
        idempotency_key: str | None = None,
    ) -> AsyncDataset:
        call = _calls.dataset_json(body, idempotency_key, name=name, label=label, task=task)
        return await self._create(call)

    async def from_csv(
        self,
        source: str | Path | bytes,
        *,
        label: str | None = None,
        name: str | None = None,
        task: str | None = None,
        idempotency_key: str | None = None,
    ) -> AsyncDataset:
        call = _calls.dataset_file(source, "csv", name=name, key=idempotency_key, label=label, task=task)
        return await self._create(call)

    async def from_npz(
        self,
        source: str | Path | bytes,
        *,
        name: str | None = None,
        label: str | None = None,
        task: str | None = None,
        idempotency_key: str | None = None,
    ) -> AsyncDataset:
        call = _calls.dataset_file(source, "npz", name=name, key=idempotency_key, label=label, task=task)
        return await self._create(call)

    async def _create(self, call: Call) -> AsyncDataset:
        return self._client.bind(AsyncDataset, await self._client.json(call))

    async def get(self, dataset_id: str) -> AsyncDataset:
        return self._client.bind(
            AsyncDataset, await self._client.json(_calls.get_call("datasets", dataset_id))
        )

    async def list(self, *, limit: int | None = None, cursor: str | None = None) -> Page[AsyncDataset]:
        return await self._client.page(AsyncDataset, _calls.list_call("datasets", limit, cursor))

    def iter(self, *, page_size: int = 100) -> AsyncIterator[AsyncDataset]:
        return self._client.pages(AsyncDataset, "datasets", page_size)

    async def data(self, dataset_id: str) -> tuple[Array, Array]:
        return _calls.dataset_arrays(await self._client.send(_calls.dataset_data(dataset_id)))

    async def delete(self, dataset_id: str) -> None:
        await self._client.send(_calls.delete_call("datasets", dataset_id))


class AsyncFollow(AsyncIterator[Update]):
    """``async for update in client.jobs.follow(job_id)``: as :class:`descent_client.Follow`."""

    def __init__(
        self, client: AsyncClient, job_id: str, state: FollowState, deadline: float | None = None
    ) -> None:
        self._client, self.job_id, self.state, self.deadline = client, job_id, state, deadline
        self._updates: AsyncIterator[Update] | None = None

    @property
    def last_event_id(self) -> int:
        return self.state.last_event_id

    @property
    def last_epoch(self) -> int:
        return self.state.last_epoch

    def __aiter__(self) -> AsyncFollow:
        return self

    async def __anext__(self) -> Update:
        if self._updates is None:
            self._updates = self._run()
        try:
            return await anext(self._updates)
        except StopAsyncIteration:
            raise
        except BaseException:
            self._updates = None
            raise

    async def aclose(self) -> None:
        if self._updates is not None:
            await self._updates.aclose()  # type: ignore[attr-defined]
            self._updates = None

    async def _run(self) -> AsyncIterator[Update]:
        state, failing_since, attempt = self.state, None, 0
        while not state.done:
            try:
                call = _calls.job_events(self.job_id, state.last_event_id)
                async with self._client.stream_lines(call, _calls.read_timeout(self.deadline)) as lines:
                    failing_since, attempt = None, 0
                    decoder = SSEDecoder()
                    async for line in lines:
                        event = decoder.feed(line)
                        if event is None or event.id <= state.last_event_id:
                            continue
                        plan = state.plan(event)
                        for update in plan.now:
                            yield update
                        for update in state.epoch_updates(event.id, plan.rows):
                            yield update
                        if plan.fetch:
                            history = await self._client.json(
                                _calls.job_metrics(self.job_id, state.last_epoch)
                            )
                            for update in state.epoch_updates(event.id, history_rows(history, plan.upto)):
                                yield update
                        for update in plan.after:
                            yield update
                        state.commit(event)
                        if state.done:
                            return
                # The service closed the stream before the end (e.g. it is shutting down).
                raise _calls.StreamClosed(f"the event stream of job {self.job_id} closed before its end")
            except _calls.RECONNECTABLE as exc:
                failing_since = failing_since or time.monotonic()
                await anyio.sleep(
                    _calls.reconnect_delay(
                        self.job_id,
                        exc,
                        failing_since,
                        attempt,
                        self._client.reconnect_timeout,
                        self.deadline,
                    )
                )
                attempt += 1


class AsyncJobs:
    """``client.jobs`` of the async client (see ``Client.jobs``)."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def create(
        self,
        config: BaseModel | Mapping[str, Any] | None = None,
        /,
        *,
        idempotency_key: str | None = None,
        **fields: Any,
    ) -> AsyncJob:
        body = _calls.training_body(config, fields)
        return self._client.bind(AsyncJob, await self._client.json(_calls.create_job(body, idempotency_key)))

    async def dry_run(
        self, config: BaseModel | Mapping[str, Any] | None = None, /, **fields: Any
    ) -> dict[str, Any]:
        body = _calls.training_body(config, fields)
        result: dict[str, Any] = await self._client.json(_calls.create_job(body, None, dry_run=True))
        return result

    async def get(self, job_id: str) -> AsyncJob:
        return self._client.bind(AsyncJob, await self._client.json(_calls.get_call("jobs", job_id)))

    async def list(
        self, *, status: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> Page[AsyncJob]:
        return await self._client.page(AsyncJob, _calls.list_call("jobs", limit, cursor, status=status))

    def iter(self, *, status: str | None = None, page_size: int = 100) -> AsyncIterator[AsyncJob]:
        return self._client.pages(AsyncJob, "jobs", page_size, status=status)

    async def cancel(self, job_id: str) -> AsyncJob:
        return self._client.bind(AsyncJob, await self._client.json(_calls.cancel_job(job_id)))

    async def metrics(
        self, job_id: str, *, since_epoch: int | None = None, max_points: int | None = None
    ) -> JobMetrics:
        body = await self._client.json(_calls.job_metrics(job_id, since_epoch, max_points))
        return JobMetrics.model_validate(body)

    def follow(self, job_id: str, *, last_event_id: int = 0, since_epoch: int = 0) -> AsyncFollow:
        return AsyncFollow(self._client, job_id, FollowState(last_event_id, since_epoch))

    async def wait(self, job_id: str, *, timeout: float | None = None, check: bool = True) -> AsyncJob:
        deadline = None if timeout is None else time.monotonic() + timeout
        async for _ in AsyncFollow(self._client, job_id, FollowState(epochs=False), deadline):
            pass
        job = await self.get(job_id)
        if check and job.status != "succeeded":
            raise JobFailed(job)
        return job


class AsyncModels:
    """``client.models`` of the async client (see ``Client.models``)."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def get(self, model_id: str, *, parameters: bool = False) -> AsyncModel:
        call = _calls.get_call("models", model_id, include="parameters" if parameters else None)
        return self._client.bind(AsyncModel, await self._client.json(call))

    async def list(self, *, limit: int | None = None, cursor: str | None = None) -> Page[AsyncModel]:
        return await self._client.page(AsyncModel, _calls.list_call("models", limit, cursor))

    def iter(self, *, page_size: int = 100) -> AsyncIterator[AsyncModel]:
        return self._client.pages(AsyncModel, "models", page_size)

    async def predict(self, model_id: str, X: Any = None, *, dataset_id: str | None = None) -> Prediction:
        call = _calls.predict(model_id, X, dataset_id)
        return Prediction.model_validate(_calls.answer(await self._client.send(call)))

    async def export(
        self, model_id: str, *, format: Literal["json", "npz"] = "json", path: str | Path | None = None
    ) -> bytes:
        content = (await self._client.send(_calls.export_model(model_id, format))).content
        if path is not None:
            Path(path).write_bytes(content)
        return content

    async def import_(
        self, source: str | Path | bytes | Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> AsyncModel:
        call = _calls.import_model(source, idempotency_key)
        return self._client.bind(AsyncModel, await self._client.json(call))

    async def delete(self, model_id: str) -> None:
        await self._client.send(_calls.delete_call("models", model_id))
