"""Avro schemas: the single source of truth for every record and table in Touchline.

Every ``*.avsc`` file in this package describes one record type. Files named ``raw_*`` are the raw
input records of a channel; files whose schema carries a ``"touchline": {"table": ...}`` attribute
are warehouse tables. Warehouse DDL (DuckDB, BigQuery) and Arrow schemas are generated from them by
:mod:`touchline.schemas.model` and its per-target modules; nothing re-declares a schema by hand.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

import fastavro

__all__ = ["names", "load", "parsed", "table_schemas", "table_schema", "TableSpec"]


def _schema_files() -> dict[str, Any]:
    return {
        entry.name[: -len(".avsc")]: entry
        for entry in resources.files(__name__).iterdir()
        if entry.name.endswith(".avsc")
    }


@functools.cache
def names() -> tuple[str, ...]:
    """Names of every schema file shipped with Touchline (without ``.avsc``)."""
    return tuple(sorted(_schema_files()))


@functools.cache
def _load_text(name: str) -> str:
    files = _schema_files()
    if name not in files:
        raise KeyError(f"no schema named {name!r}; known: {', '.join(sorted(files))}")
    return files[name].read_text(encoding="utf-8")


def load(name: str) -> dict[str, Any]:
    """The schema as written (a fresh copy, safe to mutate)."""
    return json.loads(_load_text(name))


@functools.cache
def parsed(name: str) -> dict[str, Any]:
    """The schema parsed by fastavro (for readers and writers). Cached: do not mutate."""
    return fastavro.parse_schema(load(name))


class TableSpec:
    """Warehouse metadata of a table schema (its ``"touchline"`` attribute)."""

    def __init__(self, schema_name: str, schema: dict[str, Any]):
        meta = schema["touchline"]
        self.schema_name = schema_name
        self.schema = schema
        self.name: str = meta["table"]
        self.key: tuple[str, ...] = tuple(meta["key"])
        self.write: str = meta.get("write", "merge")
        self.partition_by: str | None = meta.get("partition_by")
        self.cluster_by: tuple[str, ...] = tuple(meta.get("cluster_by", ()))
        self.require_partition_filter: bool = bool(meta.get("require_partition_filter", False))
        self.doc: str = schema.get("doc", "")
        if self.write not in ("merge", "insert_if_absent", "replace"):
            raise ValueError(f"{schema_name}: unknown write mode {self.write!r}")
        fields = {f["name"] for f in schema["fields"]}
        for col in (*self.key, *self.cluster_by, *([self.partition_by] if self.partition_by else [])):
            if col not in fields:
                raise ValueError(f"{schema_name}: table metadata names unknown column {col!r}")

    @property
    def columns(self) -> list[str]:
        return [f["name"] for f in self.schema["fields"]]

    @property
    def parsed(self) -> dict[str, Any]:
        return parsed(self.schema_name)

    def __repr__(self) -> str:
        return f"TableSpec({self.name!r})"


@functools.cache
def table_schemas() -> dict[str, TableSpec]:
    """Every warehouse table, by table name."""
    specs: dict[str, TableSpec] = {}
    for name in names():
        schema = load(name)
        if "touchline" in schema and "table" in schema["touchline"]:
            spec = TableSpec(name, schema)
            if spec.name in specs:
                raise ValueError(f"table {spec.name!r} declared by two schemas")
            specs[spec.name] = spec
    return specs


def table_schema(table: str) -> TableSpec:
    try:
        return table_schemas()[table]
    except KeyError:
        raise KeyError(f"no table named {table!r}; known: {', '.join(sorted(table_schemas()))}") from None
