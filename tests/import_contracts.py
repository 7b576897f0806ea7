"""An import-linter contract type: a package imports only the standard library and the packages listed.

import-linter's own contracts forbid imports; this one allows them, so that a dependency nobody
thought to forbid cannot creep in. ``pyproject.toml`` registers it as ``allowed_imports``::

    [tool.importlinter]
    include_external_packages = true
    contract_types = ["allowed_imports: tests.import_contracts.AllowedImportsContract"]

    [[tool.importlinter.contracts]]
    name = "The engine imports only NumPy and the standard library"
    type = "allowed_imports"
    source_modules = ["engine"]
    allowed_modules = ["numpy"]

Each module of ``source_modules`` (and of their subpackages) may import its own package, the standard
library (``sys.stdlib_module_names``) and ``allowed_modules`` with their subpackages; any other import is
a broken contract, listed with its line numbers.
"""

from __future__ import annotations

import sys
from typing import Any

from grimp import ImportGraph
from importlinter import Contract, ContractCheck, fields, output


def _within(module: str, packages: set[str]) -> bool:
    return any(module == package or module.startswith(package + ".") for package in packages)


class AllowedImportsContract(Contract):
    """``source_modules`` import nothing but themselves, the standard library and ``allowed_modules``."""

    type_name = "allowed_imports"

    source_modules = fields.ListField(subfield=fields.ModuleField())
    allowed_modules = fields.ListField(subfield=fields.ModuleField(), required=False)

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        sources = {module.name for module in self.source_modules}  # type: ignore[attr-defined]
        allowed = {module.name for module in self.allowed_modules or []}  # type: ignore[attr-defined]
        allowed |= sources | set(sys.stdlib_module_names)
        illegal: list[dict[str, Any]] = []
        for source in sorted(sources):
            if source not in graph.modules:
                raise ValueError(f"module {source} is not in the import graph")
            for importer in sorted({source} | graph.find_descendants(source)):
                for imported in sorted(graph.find_modules_directly_imported_by(importer)):
                    if _within(imported, allowed):
                        continue
                    details = graph.get_import_details(importer=importer, imported=imported)
                    lines = tuple(detail["line_number"] for detail in details)
                    illegal.append({"importer": importer, "imported": imported, "line_numbers": lines})
        return ContractCheck(kept=not illegal, metadata={"illegal_imports": illegal})

    def render_broken_contract(self, check: ContractCheck) -> None:
        allowed = ", ".join(module.name for module in self.allowed_modules or [])  # type: ignore[attr-defined]
        output.print_error(f"Imports outside the standard library and {allowed or 'the package itself'}:")
        output.new_line()
        for link in check.metadata["illegal_imports"]:
            lines = ", ".join(map(str, link["line_numbers"]))
            output.print_error(f"- {link['importer']} -> {link['imported']} (l.{lines})", bold=False)
        output.new_line()
