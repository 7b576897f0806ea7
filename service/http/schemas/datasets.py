"""Request and response models of the /v1/datasets resource.

Arrays (X, y) are ``Any`` documented with an array schema: pydantic checks the small fields and
``service.services.datasets`` converts the arrays itself (see ``service.http.arrays``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from service.http.schemas.common import ArrayField, exactly_one_of
from service.http.schemas.training import GeneratorSpec
from service.vocabulary import MIN_SAMPLES, Task

DATASET_ID_EXAMPLE = "ds_06231f0e9d8c7b6a5f4e3d2c"
# The name of a dataset uploaded without one (neither the `name` query parameter nor a JSON `name`).
DEFAULT_NAME = "upload"
# A label column's name: a CSV header's names are read without whitespace around them.
LABEL_PATTERN = r"^\S([\s\S]*\S)?$"
_SHA256_EXAMPLE = "9f2c1e0b7a6d5c4b3a29181706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3"

# A label is a number or a string, all labels of one dataset of one kind; or a row of numbers per
# sample (multilabel 0/1, or several regression targets).
LABELS_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "array", "items": {"type": "number"}, "minItems": MIN_SAMPLES},
        {"type": "array", "items": {"type": "string"}, "minItems": MIN_SAMPLES},
        {
            "type": "array",
            "items": {"type": "array", "items": {"type": "number"}, "minItems": 1},
            "minItems": MIN_SAMPLES,
        },
    ]
}
_LABEL_SCHEMA: dict[str, Any] = {
    "anyOf": [{"type": "number"}, {"type": "string"}, {"type": "array", "items": {"type": "number"}}]
}


def _labels_field(description: str, example: Any, **kwargs: Any) -> Any:
    return Field(description=description, examples=[example], json_schema_extra=LABELS_SCHEMA, **kwargs)


class DatasetCreate(BaseModel):
    """A dataset sent as JSON: arrays X and y, or a generator to draw it from."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            **exactly_one_of(("X", "y"), ("generator",), task=("X", "y")),
            "examples": [
                {"name": "and", "X": [[0, 0], [0, 1], [1, 0], [1, 1]], "y": [0, 0, 0, 1]},
                {
                    "name": "spiral-3",
                    "generator": {"kind": "spiral", "n_samples": 300, "noise": 0.2, "seed": 7},
                },
            ],
        },
    )

    name: str = Field(
        DEFAULT_NAME,
        min_length=1,
        max_length=200,
        description="A name to recognise the dataset by. The `name` query parameter, when given, takes"
        f" its place; without either the name is {DEFAULT_NAME!r}.",
        examples=["xor-400"],
    )
    X: Annotated[
        Any,
        ArrayField(
            2,
            f"Features, shape [n_samples, n_features]; finite numbers, at least {MIN_SAMPLES} samples.",
            [[0, 0], [0, 1], [1, 0], [1, 1]],
            min_items=MIN_SAMPLES,
        ),
    ] = None
    y: Annotated[
        Any,
        _labels_field(
            "Labels or targets, one per row of X: numbers, or strings (class names). Strings, and"
            " integers with at most 100 distinct values, make a classification dataset; other numbers a"
            " regression one. A row of numbers per sample (shape [n_samples, n_outputs]) makes a"
            " multilabel dataset when every value is 0 or 1, else a multi-output regression.",
            [0, 1, 1, 0],
        ),
    ] = None
    task: Task | None = Field(
        None,
        description="Override the inferred task, e.g. 'regression' on integer targets (X/y data only);"
        " the `task` query parameter, when given, takes its place.",
        examples=["regression"],
    )
    generator: GeneratorSpec | None = Field(
        None,
        description="Draw the data from a seeded generator instead of sending X and y.",
        examples=[{"kind": "moons", "n_samples": 400, "noise": 0.1, "seed": 7}],
    )

    @model_validator(mode="after")
    def _one_source(self) -> DatasetCreate:
        arrays = self.X is not None or self.y is not None
        if arrays == (self.generator is not None):
            raise ValueError("give either X and y, or a generator")
        if arrays and (self.X is None or self.y is None):
            raise ValueError("give both X and y")
        if self.generator is not None and self.task is not None:
            raise ValueError("task applies to X/y data; a generator's task follows from its kind")
        return self


class Dataset(BaseModel):
    """A stored dataset's description (its arrays are at GET /v1/datasets/{id}/data)."""

    id: str = Field(description="The dataset's id.", examples=[DATASET_ID_EXAMPLE])
    name: str = Field(description="The name it was created with.", examples=["xor-400"])
    n_samples: int = Field(description="Number of rows.", examples=[400])
    n_features: int = Field(description="Number of feature columns.", examples=[2])
    n_outputs: int = Field(
        1,
        description="Columns of y: 1 for one label or target per sample; the labels of a multilabel"
        " dataset, or the targets of a multi-output regression.",
        examples=[1],
    )
    task: Task = Field(
        description="binary or multiclass (classification: y holds class labels), multilabel (y holds"
        " n_outputs 0/1 labels per sample) or regression (y holds one or n_outputs real targets).",
        examples=["binary"],
    )
    classes: list[int | float | str] | None = Field(
        description="Classification: the distinct labels, sorted; a model's class index k stands for"
        " classes[k]. Null for regression.",
        examples=[[0, 1]],
    )
    class_counts: list[int] | None = Field(
        description="Classification: the number of samples of each class, in the order of classes."
        " Null for regression.",
        examples=[[200, 200]],
    )
    sha256: str = Field(
        description="SHA-256 of the stored arrays (equal data gives an equal hash).",
        examples=[_SHA256_EXAMPLE],
    )
    created_at: datetime = Field(
        description="When it was stored (RFC 3339, UTC).", examples=["2025-01-31T12:00:00.123456+00:00"]
    )
    source: dict[str, Any] = Field(
        description="How the data came to be: kind 'json', 'csv', 'npz' or 'generator' (with the"
        " generator's settings). A CSV upload, and any upload given `?label=`, has its CSV `columns`"
        " and the name of its `label` column.",
        examples=[
            {
                "kind": "generator",
                "generator": {
                    "kind": "xor",
                    "n_samples": 400,
                    "noise": 0.1,
                    "n_classes": None,
                    "n_features": None,
                    "seed": 7,
                },
            }
        ],
    )


class DatasetPage(BaseModel):
    """One page of datasets, newest first."""

    items: list[Dataset] = Field(
        description="At most `limit` datasets.",
        examples=[
            [
                {
                    "id": DATASET_ID_EXAMPLE,
                    "name": "and",
                    "n_samples": 4,
                    "n_features": 2,
                    "task": "binary",
                    "classes": [0, 1],
                    "class_counts": [3, 1],
                    "sha256": _SHA256_EXAMPLE,
                    "created_at": "2025-01-31T12:00:00.123456+00:00",
                    "source": {"kind": "json"},
                }
            ]
        ],
    )
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page.",
        examples=[DATASET_ID_EXAMPLE],
    )


class DatasetData(BaseModel):
    """A dataset's arrays, with y as the original labels."""

    X: Annotated[Any, ArrayField(2, "Features, shape [n_samples, n_features].", [[0.0, 0.0], [1.0, 1.0]])]
    y: Annotated[
        Any,
        Field(
            description="Labels as uploaded (numbers or strings) for classification, targets for regression;"
            " a row per sample for multilabel and multi-output data.",
            examples=[["cat", "dog"]],
            json_schema_extra={"type": "array", "items": _LABEL_SCHEMA},
        ),
    ]
