"""Admission by cost: what a job or a compute request will take, estimated before it runs.

The estimates count the arrays the engine allocates, not Python's overhead, and they are deliberately
simple: each is a sum of terms a reader can check against the engine's code.

A training job holds

* the data: the engine keeps about three copies of X in the training dtype (the cast, the
  standardised or shuffled copy, and the mini-batch buffers), plus the targets;
* the parameters θ (P numbers), their gradient (P), the optimizer's state (0 for gd and sgd, P for
  momentum and nesterov, 2P for adam and adamw), the best weights so far (P) and one checkpoint
  (θ plus the optimizer state, serialised);
* the activations of one batch: every layer's z and a (batch × Σ units, twice), and the output
  error travelling back (batch × the widest layer, twice). Full-batch training has batch = the
  training rows. The validation pass keeps one layer's values for at most 4,096 rows at a time.

A compute request holds its input arrays (as float64), the model's parameters, every layer's
intermediate values for the rows it is asked about, and a JSON response of about 24 bytes per number.

A request whose estimate exceeds its limit is refused before anything runs; the refusal names the
limit, the estimate and the setting that raises it. Each worker process also runs under a memory cap
(``DESCENT_WORKER_MEMORY_MB``), a backstop that does not trust these estimates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise

from engine.optimizers import OPTIMIZERS
from service.errors import OverLimit
from service.settings import Settings

MB = 1024 * 1024
#: Bytes per number in a JSON response: up to 17 significant digits, sign, exponent and separator.
JSON_BYTES_PER_NUMBER = 24
#: The validation pass and the loss-only evaluations run in chunks of this many rows (engine.models).
EVAL_CHUNK_ROWS = 4096
#: Copies of X the training loop keeps in its dtype (measured: 2.97, docs/benchmarks.md).
DATA_COPIES = 3


@dataclass(frozen=True)
class Estimate:
    """An estimate in bytes, with the terms it is the sum of (for the dry run and for refusals)."""

    terms: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.terms.values())

    def as_dict(self) -> dict[str, int]:
        """The terms and their total, for a JSON document."""
        return {**self.terms, "total_bytes": self.total}


def n_parameters(layer_sizes: Sequence[int]) -> int:
    """Weights and biases of dense layers of these sizes (input first): Σ (n_in + 1) · n_out."""
    return sum((n_in + 1) * n_out for n_in, n_out in pairwise(layer_sizes))


def _activations(rows: int, layer_sizes: Sequence[int], itemsize: int) -> int:
    """Every layer's z and a for ``rows`` rows, and the error travelling back through the widest layer."""
    units = sum(layer_sizes[1:])
    widest = max(layer_sizes[1:], default=0)
    return 2 * rows * units * itemsize + 2 * rows * widest * itemsize


def training_job(
    *,
    n_samples: int,
    n_features: int,
    layer_sizes: Sequence[int],
    optimizer: str,
    batch_size: int | None,
    validation_fraction: float,
    itemsize: int,
) -> Estimate:
    """Bytes a training job will hold at its peak.

    Parameters
    ----------
    n_samples, n_features : int
        The dataset's shape.
    layer_sizes : sequence of int
        Input width first, then every layer's units (the output layer last).
    optimizer : str
        Its name; it keeps ``len(OPTIMIZERS[optimizer].state_buffers)`` parameter-sized vectors of state.
    batch_size : int or None
        None is full batch: the batch is every training row.
    validation_fraction : float
        Share of the rows held out; the validation pass runs in chunks of ``EVAL_CHUNK_ROWS``.
    itemsize : int
        4 for float32, 8 for float64.
    """
    n_val = int(n_samples * validation_fraction)
    n_train = max(n_samples - n_val, 1)
    batch = n_train if batch_size is None else min(batch_size, n_train)
    params = n_parameters(layer_sizes)
    state = len(OPTIMIZERS[optimizer].state_buffers)
    n_outputs = layer_sizes[-1] if layer_sizes else 1
    return Estimate(
        {
            "data_bytes": DATA_COPIES * n_samples * n_features * itemsize
            + 2 * n_samples * n_outputs * itemsize,
            # θ, ∂L/∂θ, the optimizer's state, the best weights, and a checkpoint of θ and the state.
            "parameter_bytes": (2 + state + 1 + (1 + state)) * params * itemsize,
            "batch_bytes": _activations(batch, layer_sizes, itemsize),
            # Loss-only: one layer's input and output for a chunk of rows at a time.
            "validation_bytes": 2 * min(n_val, EVAL_CHUNK_ROWS) * max(layer_sizes[1:], default=0) * itemsize,
        }
    )


def forward_request(
    *, n_rows: int, layer_sizes: Sequence[int], return_intermediates: bool, gradients: bool = False
) -> tuple[Estimate, int]:
    """Bytes a forward or gradients request holds, and the bytes of its JSON response.

    The engine keeps every layer's z and a either way (backpropagation needs them); the response
    carries the outputs, plus every layer's z and a with ``return_intermediates``, plus one gradient
    per parameter for ``/v1/gradients``.
    """
    itemsize = 8
    params = n_parameters(layer_sizes)
    n_outputs = layer_sizes[-1] if layer_sizes else 1
    memory = Estimate(
        {
            "input_bytes": n_rows * (layer_sizes[0] if layer_sizes else 0) * itemsize,
            "parameter_bytes": (2 if gradients else 1) * params * itemsize,
            "activation_bytes": _activations(n_rows, layer_sizes, itemsize),
        }
    )
    numbers = n_rows * n_outputs
    if return_intermediates:
        numbers += 2 * n_rows * sum(layer_sizes[1:])
    if gradients:
        numbers += params
    return memory, response_bytes(numbers)


def response_bytes(n_numbers: int) -> int:
    """The size of a JSON response carrying this many numbers."""
    return n_numbers * JSON_BYTES_PER_NUMBER


def over(estimate: int, limit_mb: float) -> bool:
    """Whether an estimate in bytes exceeds a limit in MiB."""
    return estimate > limit_mb * MB


def describe(estimate: int) -> str:
    """Bytes for a message: ``"1.5 GiB"``, ``"12.0 MiB"``, ``"512 bytes"``."""
    if estimate >= 1024 * MB:
        return f"{estimate / (1024 * MB):.1f} GiB"
    if estimate >= MB:
        return f"{estimate / MB:.1f} MiB"
    return f"{estimate} bytes"


def _refuse_over(what: str, estimate: Estimate, limit_mb: float, setting: str) -> None:
    if over(estimate.total, limit_mb):
        raise OverLimit(
            what,
            setting=f"DESCENT_{setting.upper()}",
            limit_bytes=int(limit_mb * MB),
            estimate=estimate.as_dict(),
        )


def admit_job(settings: Settings, estimate: Estimate) -> None:
    """413 ``over-limit`` when a training job's estimate exceeds ``max_job_memory_mb``."""
    _refuse_over("the job's peak memory", estimate, settings.max_job_memory_mb, "max_job_memory_mb")


def admit_compute(settings: Settings, memory: Estimate, response: int, *, what: str) -> None:
    """413 ``over-limit`` when a compute request's memory or JSON response exceeds its limit."""
    _refuse_over(
        f"the {what} request's memory", memory, settings.max_compute_memory_mb, "max_compute_memory_mb"
    )
    admit_response(settings, response, what=what)


def admit_response(settings: Settings, response: int, *, what: str) -> None:
    """413 ``over-limit`` when a JSON response's estimate exceeds ``max_response_mb``."""
    estimate = Estimate({"response_bytes": response})
    _refuse_over(f"the {what} response", estimate, settings.max_response_mb, "max_response_mb")


def admit_predict(settings: Settings, *, n_rows: int, layer_sizes: Sequence[int]) -> None:
    """413 when predicting on ``n_rows`` rows would hold or answer too much.

    The response carries a prediction per row and, for classifiers, the probabilities (one number
    per output per row).
    """
    memory, _ = forward_request(n_rows=n_rows, layer_sizes=layer_sizes, return_intermediates=False)
    n_outputs = layer_sizes[-1] if layer_sizes else 1
    admit_compute(settings, memory, response_bytes(n_rows * (1 + n_outputs)), what="predict")
