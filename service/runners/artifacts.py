"""How trained models and checkpoints are written to and read from the store (``.npz``, never pickle)."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np

from engine.models import Architecture, Parameters, zeros
from engine.training import Checkpoint, FitResult, Standardization

Array = np.ndarray[Any, Any]


def architecture_json(architecture: Architecture) -> dict[str, Any]:
    """The architecture as stored with a model and shown by the API."""
    return {
        "type": architecture.kind,
        "n_features": architecture.n_features,
        "layers": [
            {"units": units, "activation": act, **({"params": dict(params)} if params else {})}
            for units, act, params in zip(
                architecture.layer_sizes[1:],
                architecture.activations,
                architecture.activation_params,
                strict=True,
            )
        ],
        "loss": architecture.loss,
    }


def architecture_from_json(data: dict[str, Any]) -> Architecture:
    """Inverse of ``architecture_json``; ValueError for an inconsistent description."""
    try:
        layers = data["layers"]
        return Architecture(
            data["type"],
            (int(data["n_features"]), *(int(layer["units"]) for layer in layers)),
            tuple(str(layer["activation"]) for layer in layers),
            data["loss"],
            tuple(dict(layer.get("params") or {}) for layer in layers),
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"invalid model architecture: missing or malformed {exc}") from None


def parameter_arrays(architecture: Architecture, params: Parameters) -> dict[str, Array]:
    """Per-layer arrays named W0, b0, W1, b1, … (copies, in the parameters' dtype)."""
    arrays: dict[str, Array] = {}
    for i, (w, b) in enumerate(zip(params.weights, params.biases, strict=True)):
        arrays[f"W{i}"] = np.array(w)
        arrays[f"b{i}"] = np.array(b)
    return arrays


def parameters_from_arrays(architecture: Architecture, arrays: dict[str, Array]) -> Parameters:
    """Inverse of ``parameter_arrays``: checks every name and shape."""
    n = len(architecture.shapes)
    expected = {f"{p}{i}" for i in range(n) for p in "Wb"}
    if set(arrays) != expected:
        raise ValueError(f"parameters must be exactly {sorted(expected)}, got {sorted(arrays)}")
    dtype = arrays["W0"].dtype
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"parameters must be float32 or float64, got {dtype}")
    params = zeros(architecture, dtype)
    for i, (fan_in, fan_out) in enumerate(architecture.shapes):
        w, b = arrays[f"W{i}"], arrays[f"b{i}"]
        if w.shape != (fan_in, fan_out) or b.shape != (fan_out,):
            raise ValueError(
                f"layer {i}: W{i} must have shape {[fan_in, fan_out]} and b{i} {[fan_out]},"
                f" got {list(w.shape)} and {list(b.shape)}"
            )
        params.weights[i][...] = w
        params.biases[i][...] = b
    return params


def model_payload(
    result: FitResult, params: Parameters, task: str, classes: list[Any] | None, metrics: dict[str, Any]
) -> dict[str, Any]:
    """The keyword arguments the store needs to save a trained model."""
    std = result.standardization
    return {
        "architecture": architecture_json(result.architecture),
        "n_features": result.architecture.n_features,
        "task": task,
        "classes": classes,
        "metrics": metrics,
        "standardization": None if std is None else {"mean": std.mean.tolist(), "scale": std.scale.tolist()},
        "parameters": parameter_arrays(result.architecture, params),
    }


_MEAN, _SCALE, _META = "standardization.mean", "standardization.scale", "meta"
# Models up to this size write a snapshot with each progress write: larger ones would cost too much.
SNAPSHOT_MAX_PARAMETERS = 100_000


def snapshot_to_bytes(
    meta: dict[str, Any], architecture: Architecture, flat: Array, standardization: Standardization | None
) -> bytes:
    """A running job's parameters as ``.npz``: W0, b0, …, the standardization's mean and scale, and
    ``meta`` (what else a model document needs: architecture, task, classes) as JSON in member meta."""
    arrays = parameter_arrays(architecture, Parameters(architecture, flat))
    if standardization is not None:
        arrays[_MEAN], arrays[_SCALE] = standardization.mean, standardization.scale
    arrays[_META] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]  # numpy's stub mistakes the arrays for allow_pickle
    return buffer.getvalue()


def snapshot_from_bytes(data: bytes) -> tuple[dict[str, Any], dict[str, Array], Standardization | None]:
    """Inverse of ``snapshot_to_bytes``: ``(meta, parameter arrays W0, b0, …, standardization)``."""
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    meta = json.loads(arrays.pop(_META).tobytes().decode())
    standardization = None
    if _MEAN in arrays:
        standardization = Standardization(arrays.pop(_MEAN), arrays.pop(_SCALE))
    return meta, arrays, standardization


def checkpoint_to_bytes(checkpoint: Checkpoint) -> bytes:
    """Serialise a training checkpoint: arrays as ``.npz``, the rest as JSON inside it."""
    arrays = {"params": checkpoint.params, "best_params": checkpoint.best_params}
    scalars: dict[str, Any] = {}
    for key, value in checkpoint.optimizer_state.items():
        if isinstance(value, np.ndarray):
            arrays[f"optimizer.{key}"] = value
        else:
            scalars[key] = value
    # The standard json module keeps the RNG's 128-bit integers and infinities exactly.
    meta = {
        "epoch": checkpoint.epoch,
        "optimizer_scalars": scalars,
        "rng_state": checkpoint.rng_state,
        "best_epoch": checkpoint.best_epoch,
        "best_loss": checkpoint.best_loss,
        "bad_epochs": checkpoint.bad_epochs,
        "history": checkpoint.history,
    }
    arrays["meta"] = np.frombuffer(json.dumps(meta, default=_plain).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]  # numpy's stub mistakes the arrays for allow_pickle
    return buffer.getvalue()


def checkpoint_from_bytes(data: bytes) -> Checkpoint:
    """Inverse of ``checkpoint_to_bytes``."""
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    meta = json.loads(arrays.pop("meta").tobytes().decode())
    optimizer_state: dict[str, Any] = dict(meta["optimizer_scalars"])
    for key in list(arrays):
        if key.startswith("optimizer."):
            optimizer_state[key.removeprefix("optimizer.")] = arrays.pop(key)
    return Checkpoint(
        epoch=meta["epoch"],
        params=arrays["params"],
        optimizer_state=optimizer_state,
        rng_state=meta["rng_state"],
        best_params=arrays["best_params"],
        best_epoch=meta["best_epoch"],
        best_loss=meta["best_loss"],
        bad_epochs=meta["bad_epochs"],
        history=meta["history"],
    )


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot serialise {type(value).__name__}")
