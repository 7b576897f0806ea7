"""From a job's training configuration to the engine's objects: architecture and fit settings."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

import orjson

from engine.architecture import MODEL_TYPES
from engine.models import Architecture, build_architecture
from engine.training import EarlyStopping, FitConfig
from service.http.schemas.training import TrainingConfig

# The output layers that can learn each dataset task; a model type whose entry fixes its output
# layer learns the tasks that output can (an mlp's output follows the task).
_TASK_OUTPUTS: dict[str, tuple[str, ...]] = {
    "binary": ("sigmoid", "softmax"),
    "multiclass": ("softmax",),
    "multilabel": ("sigmoid",),
    "regression": ("identity",),
}


def resolve(config: TrainingConfig, dataset_id: str) -> dict[str, Any]:
    """The configuration as the job keeps it: defaults filled, the dataset by id, a seed chosen."""
    resolved = config.model_dump(mode="json", exclude={"dataset"})
    resolved["dataset_id"] = dataset_id
    resolved["seed"] = config.seed if config.seed is not None else secrets.randbits(63)
    resolved["optimizer"] = {
        "name": config.optimizer.name,
        "learning_rate": config.optimizer.learning_rate,
        **config.optimizer.hyperparameters(),
    }
    # Options added to the API later stay out of the resolved form (and its hash) while unused.
    if config.optimizer.max_grad_norm is not None:
        resolved["optimizer"]["max_grad_norm"] = config.optimizer.max_grad_norm
    if config.model.activation_params is None:
        resolved["model"].pop("activation_params", None)
    schedule = config.lr_schedule
    resolved["lr_schedule"] = (
        {"name": schedule.name, **schedule.options()} if schedule else {"name": "constant"}
    )
    if not MODEL_TYPES[config.model.type].hidden_layers:
        resolved["model"] = {"type": config.model.type, "hidden_layers": []}
    return resolved


def config_hash(resolved: dict[str, Any]) -> str:
    """A stable hash of a resolved configuration (keys sorted)."""
    return hashlib.sha256(orjson.dumps(resolved, option=orjson.OPT_SORT_KEYS)).hexdigest()


def check_task(model_type: str, task: str, n_classes: int | None, n_outputs: int = 1) -> None:
    """Refuse a dataset the model type cannot learn, naming both.

    ``n_outputs`` is the number of columns of y: the labels of a multilabel dataset, the targets of
    a multi-output regression.
    """
    entry = MODEL_TYPES[model_type]
    allowed = [t for t, outputs in _TASK_OUTPUTS.items() if entry.output is None or entry.output in outputs]
    if task not in allowed:
        raise ValueError(
            f"{model_type} cannot learn a {task} dataset; it takes {' or '.join(allowed)} datasets"
        )
    fewest = entry.min_outputs
    if fewest > 1 and (n_classes or 0) < fewest:
        raise ValueError(f"{model_type} needs at least {fewest} classes")
    if entry.max_outputs is not None and n_outputs > entry.max_outputs:
        raise ValueError(
            f"{model_type} has {entry.max_outputs} output; a {task} dataset with {n_outputs} columns of y"
            " needs a model with one output per column, such as an mlp"
        )


def architecture_for(
    resolved: dict[str, Any], task: str, n_features: int, n_classes: int | None, n_outputs: int = 1
) -> Architecture:
    """The architecture a resolved configuration trains on a dataset of the given task and shape."""
    model = resolved["model"]
    check_task(model["type"], task, n_classes, n_outputs)
    # The type's own output layer, or (mlp) the first that learns the task: sigmoid for binary.
    output = MODEL_TYPES[model["type"]].output or _TASK_OUTPUTS[task][0]
    # A softmax has one unit per class; otherwise one unit per column of y.
    units = int(n_classes or 0) if output == "softmax" else n_outputs
    return build_architecture(
        model["type"],
        n_features,
        units,
        hidden_layers=model["hidden_layers"],
        activation=model.get("activation", "relu"),
        activation_params=model.get("activation_params"),
        output_activation=output,
    )


def fit_config(resolved: dict[str, Any]) -> FitConfig:
    """The engine's FitConfig for a resolved configuration."""
    optimizer = dict(resolved["optimizer"])
    name, lr = optimizer.pop("name"), optimizer.pop("learning_rate")
    max_grad_norm = optimizer.pop("max_grad_norm", None)
    schedule = dict(resolved.get("lr_schedule") or {"name": "constant"})
    early = resolved.get("early_stopping")
    return FitConfig(
        epochs=resolved["epochs"],
        optimizer=name,
        learning_rate=lr,
        optimizer_params=optimizer,
        schedule=schedule.pop("name"),
        schedule_params=schedule,
        batch_size=resolved.get("batch_size"),
        l2=resolved.get("l2", 0.0),
        validation_fraction=resolved.get("validation_fraction", 0.0),
        early_stopping=EarlyStopping(**early) if early else None,
        standardize=resolved.get("standardize", False),
        dtype=resolved.get("dtype", "float64"),
        max_runtime_s=resolved.get("max_runtime_s"),
        max_grad_norm=max_grad_norm,
    )
