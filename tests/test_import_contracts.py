"""The ``allowed_imports`` contract type (tests/import_contracts.py) on a package made for the test."""

from __future__ import annotations

from pathlib import Path

import grimp
import pytest
from importlinter import ContractCheck

from tests.import_contracts import AllowedImportsContract


def check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, str], allowed: list[str]
) -> ContractCheck:
    """The contract, sources ``mathcore`` and ``allowed`` modules, on a graph of ``files``."""
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    graph = grimp.build_graph("mathcore", "webapp", include_external_packages=True, cache_dir=None)
    contract = AllowedImportsContract(
        "only numpy", {}, {"source_modules": ["mathcore"], "allowed_modules": allowed}
    )
    return contract.check(graph, verbose=False)


PACKAGES = {
    "mathcore/__init__.py": "",
    "mathcore/ops.py": "import math\nimport numpy as np\nfrom numpy.linalg import norm\nfrom . import util\n",
    "mathcore/util.py": "from collections import abc\nimport json\n",
    "mathcore/sub/__init__.py": "",
    "webapp/__init__.py": "",
    "webapp/views.py": "import requests\nimport mathcore.ops\n",
}


def test_the_standard_library_the_package_itself_and_the_allowed_ones_keep_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # webapp imports requests: another package's imports are none of this contract's business.
    result = check(tmp_path, monkeypatch, PACKAGES, ["numpy"])
    assert result.kept, result.metadata


def test_any_other_import_breaks_it_with_the_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = {
        **PACKAGES,
        "mathcore/sub/fit.py": "import os\n\nimport requests\nfrom webapp import views\n",
    }
    result = check(tmp_path, monkeypatch, files, ["numpy"])
    assert not result.kept
    assert result.metadata["illegal_imports"] == [
        {"importer": "mathcore.sub.fit", "imported": "requests", "line_numbers": (3,)},
        {"importer": "mathcore.sub.fit", "imported": "webapp.views", "line_numbers": (4,)},
    ]
    # Nothing allowed: numpy too is outside.
    strict = check(tmp_path, monkeypatch, files, [])
    assert {link["imported"] for link in strict.metadata["illegal_imports"]} == {
        "numpy",
        "requests",
        "webapp.views",
    }
