"""From a job's training configuration to the engine's objects: architecture and fit settings."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

import orjson

from engine.models import Architecture, build_architecture
from engine.training import EarlyStopping, FitConfig
from service.http.schemas.training import TrainingConfig
from service.vocabulary import TASKS, Task

# Which model types can learn which dataset tasks.
_TASKS: dict[str, tuple[Task, ...]] = {
    "logistic_regression": ("binary",),
    "linear_regression": ("regression",),
    "softmax_regression": ("binary", "multiclass"),
    "mlp": TASKS,
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
    schedule = config.lr_schedule
    resolved["lr_schedule"] = (
        {"name": schedule.name, **schedule.options()} if schedule else {"name": "constant"}
    )
    if config.model.type != "mlp":
        resolved["model"] = {"type": config.model.type, "hidden_layers": []}
    return resolved


def config_hash(resolved: dict[str, Any]) -> str:
    """A stable hash of a resolved configuration (keys sorted)."""
    return hashlib.sha256(orjson.dumps(resolved, option=orjson.OPT_SORT_KEYS)).hexdigest()


def check_task(model_type: str, task: str, n_classes: int | None) -> None:
    """Refuse a dataset the model type cannot learn, naming both."""
    allowed = _TASKS[model_type]
    if task not in allowed:
        raise ValueError(
            f"{model_type} cannot learn a {task} dataset; it takes {' or '.join(allowed)} datasets"
        )
    if model_type == "softmax_regression" and (n_classes or 0) < 2:
        raise ValueError("softmax_regression needs at least 2 classes")


def architecture_for(
    resolved: dict[str, Any], task: str, n_features: int, n_classes: int | None
) -> Architecture:
    """The architecture a resolved configuration trains on a dataset of the given task and shape."""
    model = resolved["model"]
    check_task(model["type"], task, n_classes)
    if model["type"] != "mlp":
        n_outputs = n_classes if model["type"] == "softmax_regression" and n_classes else 1
        return build_architecture(model["type"], n_features, n_outputs)
    if task == "binary":
        n_outputs, output = 1, "sigmoid"
    elif task == "multiclass":
        n_outputs, output = int(n_classes or 0), "softmax"
    else:
        n_outputs, output = 1, "identity"
    return build_architecture(
        "mlp",
        n_features,
        n_outputs,
        hidden_layers=model["hidden_layers"],
        activation=model.get("activation", "relu"),
        output_activation=output,
    )


def fit_config(resolved: dict[str, Any]) -> FitConfig:
    """The engine's FitConfig for a resolved configuration."""
    optimizer = dict(resolved["optimizer"])
    name, lr = optimizer.pop("name"), optimizer.pop("learning_rate")
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
    )
