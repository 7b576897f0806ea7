"""A Python client of the Descent training service.

::

    from descent_client import Client

    client = Client()  # DESCENT_URL and DESCENT_API_KEY, or http://127.0.0.1:8000 without a key
    data = client.datasets.generate("xor", n_samples=400, noise=0.1, seed=1)
    job = client.jobs.create(dataset=data, model={"type": "mlp", "hidden_layers": [16], "activation": "tanh"},
                             optimizer={"name": "adam", "learning_rate": 0.01}, epochs=300, batch_size=32)
    for update in job.follow():
        print(update)
    print(job.wait().model().predict([[0.5, -0.5]]).predictions)

``AsyncClient`` offers the same with ``await`` and ``async for``.
"""

from descent_client._async import AsyncClient, AsyncFollow
from descent_client._calls import Page
from descent_client._follow import Follow
from descent_client._sync import Client
from descent_client.errors import (
    APIError,
    BadRequest,
    Conflict,
    DescentError,
    Forbidden,
    InvalidInput,
    JobFailed,
    NotAcceptable,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    TransportError,
    Unauthorized,
    UnsupportedMediaType,
)
from descent_client.events import EndUpdate, EpochUpdate, StatusUpdate, Update
from descent_client.types import (
    AsyncDataset,
    AsyncJob,
    AsyncModel,
    Dataset,
    Job,
    JobMetrics,
    Model,
    Prediction,
)

__all__ = [
    "APIError",
    "AsyncClient",
    "AsyncDataset",
    "AsyncFollow",
    "AsyncJob",
    "AsyncModel",
    "BadRequest",
    "Client",
    "Conflict",
    "Dataset",
    "DescentError",
    "EndUpdate",
    "EpochUpdate",
    "Follow",
    "Forbidden",
    "InvalidInput",
    "Job",
    "JobFailed",
    "JobMetrics",
    "Model",
    "NotAcceptable",
    "NotFound",
    "Page",
    "PayloadTooLarge",
    "Prediction",
    "RateLimited",
    "ServerError",
    "ServiceUnavailable",
    "StatusUpdate",
    "TransportError",
    "Unauthorized",
    "UnsupportedMediaType",
    "Update",
]
