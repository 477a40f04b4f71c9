"""JSON Schema helpers shared by the workflow's sample sheet reader and config check."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jsonschema


def load_schema(path: str | Path) -> dict[str, Any]:
    """Read a JSON Schema written as YAML (``workflow/schemas/*.schema.yaml``)."""
    import yaml

    with open(path, encoding="utf-8") as fh:
        schema: dict[str, Any] = yaml.safe_load(fh)
    return schema


def key_path(error: jsonschema.ValidationError) -> str:
    """The dotted key path of a schema error (``filters.min_qual``), or ``(top level)``."""
    parts = [str(p) for p in error.absolute_path]
    return ".".join(parts) if parts else "(top level)"


def describe(schema: Mapping[str, Any], column: str) -> str:
    """The schema's description of a column, for messages."""
    text = schema.get("properties", {}).get(column, {}).get("description", "see the schema")
    return str(text).strip()
