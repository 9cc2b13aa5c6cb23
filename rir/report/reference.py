"""The paper's reference numbers (rir/reference/paper.yaml): loaded with the safe YAML loader, validated.

Every paper value the report shows comes from that file, each with its `source`; unknown values are null
(docs/paper.md). A bad entry is refused with one line that names the table, the cell and the key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rir.config import read_yaml
from rir.errors import UserError

REFERENCE_DIR = Path(__file__).resolve().parent.parent / "reference"
PAPER_YAML = REFERENCE_DIR / "paper.yaml"
SCHEMA_PATH = REFERENCE_DIR / "paper.schema.json"


def cell_name(cell: dict[str, Any]) -> str:
    """A readable name of a cell for messages: `rir_18_wide/cifar10`, `rir_18/cifar10/blocks=[1, 1, 1]`."""
    head = cell.get("model") or cell.get("label") or "?"
    grid = "".join(f"/{k}={v}" for k, v in sorted((cell.get("grid") or {}).items()))
    return f"{head}/{cell.get('dataset', '?')}{grid}"


def _where(reference: Any, path: list) -> str:
    """`tables.table1.cells[5] (rir_18_wide/cifar10).value` for an error's absolute path."""
    out, node = "", reference
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            node = None
        if isinstance(part, int) and isinstance(node, dict) and "dataset" in node:
            out += f" ({cell_name(node)})"
    return out or "(top level)"


def validate_reference(reference: Any, source: str = "paper.yaml") -> None:
    """JSON Schema validation, then cross-checks; UserError names the first fault by path and cell."""
    import jsonschema

    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(reference), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        # The most specific error first: a bad `value` is reported as itself, not as a failed `allOf`.
        err = max(errors, key=lambda e: (len(e.absolute_path), list(e.absolute_path)[-1:] == ["value"]))
        raise UserError(f"{source}: {_where(reference, list(err.absolute_path))}: {err.message}")
    for table_id, table in reference["tables"].items():
        seen: set[str] = set()
        for i, cell in enumerate(table["cells"]):
            name = cell_name(cell)
            if name in seen:
                raise UserError(f"{source}: tables.{table_id}.cells[{i}] ({name}): duplicate cell")
            seen.add(name)
            if cell["dataset"] not in table["datasets"]:
                raise UserError(
                    f"{source}: tables.{table_id}.cells[{i}] ({name}).dataset: {cell['dataset']!r} is not "
                    f"one of the table's datasets {table['datasets']}"
                )


def load_reference(path: str | Path | None = None) -> dict[str, Any]:
    """Read and validate paper.yaml (default: the one shipped in rir/reference)."""
    path = Path(path) if path else PAPER_YAML
    reference = read_yaml(path, "reference file")
    validate_reference(reference, source=str(path))
    return reference
