"""Where data comes from on the command line: files (CSV, .npz, JSON) and generator shorthands."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from engine.datasets import GENERATORS

if TYPE_CHECKING:
    from descent_client import Client, Dataset

_ALIASES = {"n": "n_samples", "samples": "n_samples", "classes": "n_classes", "features": "n_features"}
_INTS = {"n_samples", "n_classes", "n_features", "seed"}
_FIELDS = (*_INTS, "noise")
SHORTHAND_HELP = (
    "a generator shorthand KIND[:KEY=VALUE,...], KIND one of "
    + ", ".join(GENERATORS)
    + " and KEY one of n (n_samples), noise, seed, classes (n_classes), features (n_features),"
    " e.g. 'moons:n=400,noise=0.1,seed=7'"
)

LABEL_HELP = (
    "The label column: of a CSV file, the column that holds the labels (default: the last); of other"
    " sources, the name of the label column in the dataset's CSV form (default: y)."
)


def generator_spec(source: str) -> dict[str, Any] | None:
    """The generator of a shorthand like ``xor`` or ``spiral:n=600,classes=3``; None when it is not one."""
    kind, _, rest = source.partition(":")
    if kind not in GENERATORS:
        return None
    spec: dict[str, Any] = {"kind": kind}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, value = item.partition("=")
        key = _ALIASES.get(key.strip(), key.strip())
        if not sep or key not in _FIELDS:
            raise click.BadParameter(
                f"{item!r} in {source!r}: expected KEY=VALUE with KEY one of n, noise, "
                "seed, classes, features"
            )
        try:
            spec[key] = int(value) if key in _INTS else float(value)
        except ValueError:
            kind_of = "an integer" if key in _INTS else "a number"
            raise click.BadParameter(f"{key} must be {kind_of}, got {value!r} in {source!r}") from None
    return spec


def upload(
    client: Client,
    source: str,
    *,
    name: str | None = None,
    label: str | None = None,
    task: str | None = None,
    key: str | None = None,
) -> Dataset:
    """Create a dataset from a file (.csv, .npz, .json) or a generator shorthand.

    ``name``, ``label`` and ``task`` go as the upload's query parameters, which mean the same for every
    kind of body (a JSON file's own name and task give way to them).
    """
    path = Path(source)
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".npz":
            return client.datasets.from_npz(path, name=name, label=label, task=task, idempotency_key=key)
        if suffix == ".json":
            import json

            body = json.loads(path.read_text("utf-8"))
            if name is None and not (isinstance(body, dict) and "name" in body):
                name = path.stem
            return client.datasets.from_json(body, name=name, label=label, task=task, idempotency_key=key)
        return client.datasets.from_csv(path, label=label, name=name, task=task, idempotency_key=key)
    spec = generator_spec(source)
    if spec is None:
        raise click.BadParameter(f"{source!r} is neither a file nor {SHORTHAND_HELP}", param_hint="SOURCE")
    body = {"name": name or f"{spec['kind']}-{spec.get('n_samples', 200)}", "generator": spec}
    return client.datasets.from_json(body, label=label, task=task, idempotency_key=key)
