"""Schemathesis hooks: the model imports it generates (POST /v1/models) are models.

``schemathesis.toml`` loads this module (``hooks``), so the documented run (docs/contract.md) and
``test_schemathesis.py`` both use it. It touches one operation, ``models-import``, and only the data of
the fuzzing and stateful phases (the coverage phase builds its cases without component hooks, so the
documents it sends still break the rules below, and the import still refuses them with a 422).

Why it is needed. JSON Schema states what one field may hold, not how one field's value fixes another's
shape, so a document schemathesis draws from ``ModelDocument`` is valid by the document and yet almost
never a model: the import refuses it with a 422 naming the rule it breaks, and a run whose every
generated import is refused warns "Schema validation mismatch" (and never reaches the code behind those
checks: storing, predicting with, exporting an imported model). The rules, as the import checks them
(``service/services/models/importing.py``), and what ``repair`` makes of a document to keep them:

- ``architecture.n_features``, when given, is ``n_features``: both become the architecture's (or, when it
  gives none, the document's) ``n_features``.
- Softmax is only an output activation: a hidden softmax layer becomes tanh.
- A layer's ``params`` are those of its activation (alpha for leaky_relu and elu, positive for elu): other
  names are dropped, a non-positive elu alpha becomes its absolute value (or the default).
- A classification loss needs the output activation it reads probabilities from (binary_cross_entropy a
  sigmoid, cross_entropy a softmax): a loss the output layer cannot take becomes the one it pairs with,
  and a cross_entropy output gets at least 2 units.
- ``task`` suits the loss and the output units (binary: one sigmoid unit or two softmax units;
  multiclass: softmax over 2 or more; multilabel: sigmoid units; regression: no classification loss): a
  task that does not is replaced by one that does.
- ``classes`` lists 2 labels for binary, one per output unit for multiclass, and is null otherwise: the
  generated labels are kept, trimmed to the number needed and padded with new distinct ones.
- ``standardization`` (when not null) has ``n_features`` means and scales: the generated values are
  trimmed, or repeated to fill them.
- ``parameters`` are exactly W0, b0, …, W{L-1}, b{L-1}, Wi of shape [inputs, units i] (the inputs being
  n_features, then the units of the layer before) and bi of shape [units i]: each one is filled with its
  own generated numbers (or, when the document has none under that name, with all of them), trimmed or
  repeated in order.
- Numbers fit the dtype: float32 parameters and standardization are clamped to float32's range.
- The model has at most ``MAX_PARAMETERS`` weights and biases (the service's limit, setting
  max_array_elements, is far higher; this keeps the requests small): the largest of n_features and the
  layers' units is halved until it does.

Everything else is kept as generated: the model type, the number of layers, each layer's units and
activation, the loss when it fits, the dtype, the metrics, whether there is a standardization or classes,
the numbers themselves. A document that is not valid by the schema (a negative case) is left alone, so
that it is still refused.

The binary media types (``application/x-npz`` and ``application/octet-stream``) are random bytes as
generated, never an ``.npz`` archive; each becomes the ``.npz`` export (as GET /v1/models/{id}/export
writes it) of a repaired document drawn for the JSON media type.
"""

from __future__ import annotations

import copy
import heapq
import itertools
import json
import math
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import schemathesis
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.generation.value import GeneratedValue
from schemathesis.transport.serialization import Binary

from engine.activations import ACTIVATIONS
from engine.architecture import MODEL_TYPES
from engine.losses import LOSSES, loss_for_output
from service.services.models.export import NPZ_META
from service.store import encode_npz

OPERATION_ID = "models-import"
MAX_PARAMETERS = 10_000
HIDDEN_INSTEAD_OF_SOFTMAX = "tanh"
# Class names the padding adds, and how many bytes of generated names to keep (the service's limit on all
# of a model's class names, setting max_labels_kb, is 64 KiB by default).
_CLASS_NAME = "class{}"
_MAX_KEPT_NAME_BYTES = 32 * 1024

Document = dict[str, Any]


def repair(document: Document) -> Document:
    """A copy of a schema-valid ModelDocument whose fields agree with each other (see the module)."""
    doc = copy.deepcopy(document)
    arch = doc["architecture"]
    layers: list[dict[str, Any]] = arch["layers"]
    _repair_layers(arch["type"], layers)
    output = layers[-1]
    paired = loss_for_output(output["activation"])
    loss = arch.get("loss")
    if loss is not None and LOSSES[loss].output not in (None, output["activation"]):
        arch["loss"] = loss = paired
    loss = loss or paired
    # Softmax regression has 2 or more classes, and so has any cross_entropy output.
    fewest_outputs = max(MODEL_TYPES[arch["type"]].min_outputs, 2 if loss == "cross_entropy" else 1)
    output["units"] = max(output["units"], fewest_outputs)

    n_features = int(arch["n_features"] if arch.get("n_features") is not None else doc["n_features"])
    sizes = _within_budget([n_features, *(int(layer["units"]) for layer in layers)], fewest_outputs)
    n_features = sizes[0]
    doc["n_features"] = n_features
    if arch.get("n_features") is not None:
        arch["n_features"] = n_features
    for layer, units in zip(layers, sizes[1:], strict=True):
        layer["units"] = units

    k = sizes[-1]
    fitting = _tasks(loss, k)
    task = doc["task"] = doc["task"] if doc["task"] in fitting else fitting[0]
    n_classes = {"binary": 2, "multiclass": k}.get(task, 0)
    if n_classes:
        doc["classes"] = _classes(doc.get("classes"), n_classes)
    elif doc.get("classes") is not None:
        doc["classes"] = None

    limit = float(np.finfo(doc["dtype"]).max)
    std = doc.get("standardization")
    if std is not None:
        std["mean"] = _fill(std["mean"], n_features, 0.0, limit)
        std["scale"] = _fill(std["scale"], n_features, 1.0, limit)

    generated: dict[str, Any] = doc["parameters"]
    pool = [v for value in generated.values() for v in _flatten(value)]
    parameters: dict[str, Any] = {}
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        w = _fill(list(_flatten(generated.get(f"W{i}", pool))), fan_in * fan_out, 0.0, limit)
        parameters[f"W{i}"] = [w[row * fan_out : (row + 1) * fan_out] for row in range(fan_in)]
        parameters[f"b{i}"] = _fill(list(_flatten(generated.get(f"b{i}", pool))), fan_out, 0.0, limit)
    doc["parameters"] = parameters
    return doc


def to_npz(document: Document) -> bytes:
    """The ``.npz`` export of a (repaired) document: W0, b0, … in its dtype, the rest as JSON in ``meta``."""
    meta = {name: value for name, value in document.items() if name != "parameters"}
    # json, not orjson: a generated metric may be an integer beyond 64 bits, which orjson cannot write.
    meta_bytes = np.frombuffer(json.dumps(meta, allow_nan=False).encode(), dtype=np.uint8)
    arrays = {
        name: np.asarray(value, dtype=document["dtype"]) for name, value in document["parameters"].items()
    }
    return encode_npz({NPZ_META: meta_bytes, **arrays})


def _repair_layers(model_type: str, layers: list[dict[str, Any]]) -> None:
    kind = MODEL_TYPES[model_type]
    if kind.output is not None:  # the schema says as much; kept here so that repair stands on its own
        del layers[1:]
        layers[0]["activation"] = kind.output
        layers[0]["units"] = max(kind.min_outputs, min(layers[0]["units"], kind.max_outputs or math.inf))
    for i, layer in enumerate(layers):
        if layer["activation"] == "softmax" and i < len(layers) - 1:
            layer["activation"] = HIDDEN_INSTEAD_OF_SOFTMAX
        params = layer.get("params")
        if params is None:
            continue
        takes = ACTIVATIONS[layer["activation"]].params
        params = {name: value for name, value in params.items() if name in takes}
        if layer["activation"] == "elu" and "alpha" in params and not params["alpha"] > 0:
            params["alpha"] = abs(params["alpha"]) or takes["alpha"]
        layer["params"] = params


def _within_budget(sizes: list[int], fewest_outputs: int) -> list[int]:
    """Halve the largest of n_features and the units until the model has at most MAX_PARAMETERS.

    ``sizes`` is [n_features, units of each layer]; the output layer keeps ``fewest_outputs`` units.
    """
    sizes = list(sizes)
    fewest = [1] * (len(sizes) - 1) + [fewest_outputs]

    def layer(j: int) -> int:  # the weights and biases of layer j, for 0 <= j < len(sizes) - 1
        return sizes[j] * sizes[j + 1] + sizes[j + 1] if 0 <= j < len(sizes) - 1 else 0

    total = sum(layer(j) for j in range(len(sizes) - 1))
    largest = [(-size, j) for j, size in enumerate(sizes) if size > fewest[j]]
    heapq.heapify(largest)
    while total > MAX_PARAMETERS and largest:
        _, j = heapq.heappop(largest)
        total -= layer(j - 1) + layer(j)
        sizes[j] = max(fewest[j], sizes[j] // 2)
        total += layer(j - 1) + layer(j)
        if sizes[j] > fewest[j]:
            heapq.heappush(largest, (-sizes[j], j))
    return sizes


def _tasks(loss: str, k: int) -> list[str]:
    """The tasks an output of ``k`` units trained with ``loss`` serves, the more specific first."""
    if loss == "binary_cross_entropy":
        return ["binary", "multilabel"] if k == 1 else ["multilabel"]
    if loss == "cross_entropy":
        return ["binary", "multiclass"] if k == 2 else ["multiclass"]
    return ["regression"]


def _classes(generated: list[Any] | None, n: int) -> list[Any]:
    """``n`` distinct labels: the generated ones first, then new ones of the same kind."""
    generated = generated or []
    strings = bool(generated) and isinstance(generated[0], str)
    kept: list[Any] = []
    size = 0
    for label in generated[:n]:
        size += len(label.encode("utf-8", "surrogatepass")) if strings else 0
        if size > _MAX_KEPT_NAME_BYTES:
            break
        kept.append(label)
    taken = set(kept)  # JSON's equality: 1 and 1.0 are the same label
    new: Iterator[Any] = (_CLASS_NAME.format(i) if strings else i for i in itertools.count())
    while len(kept) < n:
        label = next(new)
        if label not in taken:
            kept.append(label)
            taken.add(label)
    return kept


def _flatten(value: Any) -> Iterator[Any]:
    for item in value:
        if isinstance(item, list):
            yield from item
        else:
            yield item


def _fill(values: Iterable[Any], n: int, default: float, limit: float) -> list[Any]:
    """``n`` numbers: ``values`` in order, repeated as often as needed (``default`` when there are none),
    each within ±``limit``."""
    values = [_clamp(v, limit) for v in values] or [default]
    return list(itertools.islice(itertools.cycle(values), n))


def _clamp(value: Any, limit: float) -> Any:
    """``value``, or ±``limit`` when it lies beyond (the dtype's largest finite number)."""
    try:
        beyond = abs(float(value)) > limit
    except OverflowError:  # an integer beyond float64
        beyond = True
    if not beyond:
        return value
    return math.copysign(limit, value)


# The hooks: JSON documents are repaired where they are drawn, binary bodies replaced by an .npz export.


@schemathesis.hook.apply_to(operation_id=OPERATION_ID)
def map_body(ctx: schemathesis.HookContext, body: Any) -> Any:
    if isinstance(body, dict) and ctx.operation is not None and _is_valid(ctx.operation, body):
        return repair(body)
    return body


@schemathesis.hook.apply_to(operation_id=OPERATION_ID)
def flatmap_body(ctx: schemathesis.HookContext, body: Any) -> st.SearchStrategy[Any]:
    if not isinstance(body, Binary) or ctx.operation is None:
        return st.just(body)
    return _documents(ctx.operation).map(lambda document: Binary(to_npz(repair(document))))


def _json_body(operation: schemathesis.APIOperation) -> Any:
    return next(body for body in operation.body.items if body.media_type == "application/json")


_VALIDATORS: dict[str, Any] = {}


def _is_valid(operation: schemathesis.APIOperation, body: Document) -> bool:
    """Whether ``body`` is valid by the operation's JSON schema (a positive case, not a negative one)."""
    if operation.label not in _VALIDATORS:
        validator_cls = operation.schema.adapter.jsonschema_validator_cls
        _VALIDATORS[operation.label] = validator_cls(_json_body(operation).optimized_schema)
    return bool(_VALIDATORS[operation.label].is_valid(body))


def _documents(operation: schemathesis.APIOperation) -> st.SearchStrategy[Document]:
    """Schema-valid documents, drawn as schemathesis draws the JSON bodies of the fuzzing phase."""
    config = operation.schema.config.generation_for(operation=operation, phase="fuzzing")
    strategy = _json_body(operation).get_strategy(operation, config, GenerationMode.POSITIVE)
    return strategy.map(lambda value: value.value if isinstance(value, GeneratedValue) else value).filter(
        lambda value: isinstance(value, dict) and _is_valid(operation, value)
    )
