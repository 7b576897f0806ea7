"""The models service: describe, predict, export and import (JSON or ``.npz``, never pickle).

Exports round-trip exactly: an imported export has bit-for-bit the parameters (float32 or float64),
standardization and classes of the original, so its sha256 is the same too. Modules: ``access`` (the
API's view, pages, loading for the engine, delete), ``predict``, ``export``, ``importing``. Every
function here is synchronous; async handlers run them in a worker thread.
"""

from service.services.models.access import LoadedModel, delete, list_page, load_model, model_json, read
from service.services.models.export import NPZ_META, export_document, export_npz
from service.services.models.importing import IDEMPOTENCY_SCOPE, import_json, import_model, import_npz
from service.services.models.predict import predict, predict_arrays, predict_inputs

__all__ = [
    "IDEMPOTENCY_SCOPE",
    "NPZ_META",
    "LoadedModel",
    "delete",
    "export_document",
    "export_npz",
    "import_json",
    "import_model",
    "import_npz",
    "list_page",
    "load_model",
    "model_json",
    "predict",
    "predict_arrays",
    "predict_inputs",
    "read",
]
