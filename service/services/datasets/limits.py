"""The configured dataset limits (rows, features, numbers), checked before any large work is done."""

from __future__ import annotations

from service.errors import PayloadTooLarge, field_error
from service.http.schemas.training import GeneratorSpec
from service.settings import Settings
from service.vocabulary import MIN_SAMPLES

MAX_NAME_LENGTH = 200


def _too_large(what: str, count: int, setting: str, limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the dataset has {count} {what}; the limit is {limit} (setting {setting})",
        errors=[{"loc": ["body"], "msg": f"{count} {what} is over the limit of {limit} ({setting})"}],
    )


def check_dataset_size(settings: Settings, n_samples: int, n_features: int) -> None:
    """413 naming the limit when a dataset of this shape is over the configured rows, features or elements."""
    if n_samples > settings.max_dataset_rows:
        raise _too_large("rows", n_samples, "max_dataset_rows", settings.max_dataset_rows)
    if n_features > settings.max_dataset_features:
        raise _too_large("features", n_features, "max_dataset_features", settings.max_dataset_features)
    if n_samples * n_features > settings.max_dataset_elements:
        raise _too_large(
            "numbers (rows × features)",
            n_samples * n_features,
            "max_dataset_elements",
            settings.max_dataset_elements,
        )


def check_min_samples(n_samples: int, x_name: str) -> None:
    """422 naming X when it holds fewer than ``MIN_SAMPLES`` samples (rows)."""
    if n_samples < MIN_SAMPLES:
        raise field_error(x_name, f"must hold at least {MIN_SAMPLES} samples, got {n_samples}")


def check_generator_size(settings: Settings, spec: GeneratorSpec, where: str) -> None:
    """422 naming the generator's field and the limit when it asks for more than a dataset may hold.

    A 422 rather than the 413 of :func:`check_dataset_size`: the request is small, its settings are wrong.
    """
    n_features = spec.n_features or 2
    limits = (
        ("n_samples", spec.n_samples, "max_dataset_rows", settings.max_dataset_rows),
        ("n_features", n_features, "max_dataset_features", settings.max_dataset_features),
        ("n_samples", spec.n_samples * n_features, "max_dataset_elements", settings.max_dataset_elements),
    )
    for field, value, setting, limit in limits:
        if value > limit:
            what = "numbers (n_samples × n_features)" if setting == "max_dataset_elements" else field
            raise field_error(
                f"{where}.{field}", f"asks for {value} {what}; the limit is {limit} (setting {setting})"
            )


def check_name(name: str) -> None:
    """422 unless the dataset's name is a string of 1 to ``MAX_NAME_LENGTH`` characters."""
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME_LENGTH:
        raise field_error("name", f"must be a string of 1 to {MAX_NAME_LENGTH} characters, got {name!r}")
