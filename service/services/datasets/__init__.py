"""The datasets service: ingest JSON arrays, CSV, ``.npz`` and generators; read datasets back.

Stored form (the training jobs rely on it): X is float64 of shape (n_samples, n_features). For
classification y holds int64 class *indices* 0..K-1 and the record's ``classes`` the sorted original
labels (numbers, or strings), ``class_counts`` the samples per index; for regression y is float64 and
both are None.

Modules: ``labels`` (tasks and label encoding), ``limits`` (the configured size limits), ``ingest``
(checks and storing, shared by every format and by jobs' inline data), ``uploads`` (POST /v1/datasets:
the body formats and the Idempotency-Key), ``csv_format`` (CSV in and out), ``access`` (the API's view,
pages, arrays with their original labels).

Every function here is synchronous (it parses, computes and talks to the store): async handlers run
them in a worker thread.
"""

from service.services.datasets.access import dataset_json, delete, list_page, load_data, read
from service.services.datasets.csv_format import CSVTable, csv_chunks, parse_csv
from service.services.datasets.ingest import ingest_arrays, ingest_generator
from service.services.datasets.labels import EncodedLabels, Labels, encode_labels
from service.services.datasets.limits import check_dataset_size, check_min_samples
from service.services.datasets.uploads import (
    IDEMPOTENCY_SCOPE,
    Upload,
    arrays_from_json,
    check_query,
    create,
    request_fingerprint,
    upload_scope,
)

__all__ = [
    "IDEMPOTENCY_SCOPE",
    "CSVTable",
    "EncodedLabels",
    "Labels",
    "Upload",
    "arrays_from_json",
    "check_dataset_size",
    "check_min_samples",
    "check_query",
    "create",
    "csv_chunks",
    "dataset_json",
    "delete",
    "encode_labels",
    "ingest_arrays",
    "ingest_generator",
    "list_page",
    "load_data",
    "parse_csv",
    "read",
    "request_fingerprint",
    "upload_scope",
]
