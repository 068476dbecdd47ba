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
from importlib.metadata import entry_points
from typing import Any

import fastavro

__all__ = ["SchemaPluginError", "names", "load", "parsed", "table_schemas", "table_schema", "TableSpec", "WRITE_MODES",
           "RECOMPUTE_SCOPE", "ERASE_MATCHES"]

#: The staging-only record that scopes replace_scope writes.
RECOMPUTE_SCOPE = "_recompute_scope"


class SchemaPluginError(ValueError):
    """A ``touchline.schemas`` entry point that does not lead to a folder of schemas."""


def _extra_schema_dirs() -> list[Any]:
    """Folders of plug-in packages registered under the ``touchline.schemas`` entry point group
    (the entry point names a package; its ``*.avsc`` files join the built-in ones)."""
    folders = {}
    for ep in entry_points(group="touchline.schemas"):
        where = f"entry point {ep.name!r} = {ep.value!r} (group touchline.schemas)"
        try:
            folder = resources.files(ep.load())
        except Exception as exc:  # noqa: BLE001 -- reported as one actionable message
            raise SchemaPluginError(
                f"{where} cannot be loaded: {type(exc).__name__}: {exc}\n"
                f"  fix: point it at an importable package (value \"my_plugin.schemas\") that contains *.avsc files, "
                f"or uninstall the distribution that declares it") from None
        folders.setdefault(str(folder), folder)
    return list(folders.values())


def _schema_files() -> dict[str, Any]:
    files: dict[str, Any] = {}
    for folder in [resources.files(__name__), *_extra_schema_dirs()]:
        for entry in folder.iterdir():
            if entry.name.endswith(".avsc"):
                name = entry.name[: -len(".avsc")]
                if name in files:
                    raise SchemaPluginError(f"schema {name!r} is defined twice ({files[name]} and {entry})\n"
                                            f"  fix: rename one of the files (plug-in schemas need names of their own)")
                files[name] = entry
    return files


def clear_cache() -> None:
    """Forget loaded schemas (after plug-ins are installed at run time, or in tests)."""
    for fn in (names, _load_text, parsed, table_schemas):
        fn.cache_clear()


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


#: How a run's staged rows are applied to a table (see touchline.transforms.warehouse).
WRITE_MODES = ("merge", "insert_if_absent", "replace", "replace_scope")

#: What an ``erase_by`` column holds, i.e. what ``Warehouse.erase`` matches it against: a person id,
#: an identifier hash, an event id, or text carrying ``<kind:HASH>`` tokens (dead-letter payloads).
ERASE_MATCHES = ("person_id", "id_hash", "event_id", "tokens")


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
        #: staged by pipelines for the commit, never created in a warehouse
        self.staging_only: bool = bool(meta.get("staging_only", False))
        #: replace_scope tables: (person column, date column) matched against the recompute scope
        self.scope_by: tuple[str, str] | None = tuple(meta["scope_by"]) if "scope_by" in meta else None
        #: erasure: column -> what it holds (ERASE_MATCHES); rows matching any of them belong to an erased person
        self.erase_by: dict[str, str] = dict(meta.get("erase_by", {}))
        self.doc: str = schema.get("doc", "")
        for col, match in self.erase_by.items():
            if match not in ERASE_MATCHES:
                raise ValueError(f"{schema_name}: erase_by {col!r} holds {match!r}; use one of {ERASE_MATCHES}")
        if self.write not in WRITE_MODES:
            raise ValueError(f"{schema_name}: unknown write mode {self.write!r}; use one of {WRITE_MODES}")
        if (self.write == "replace_scope") != (self.scope_by is not None):
            raise ValueError(f"{schema_name}: write mode replace_scope and scope_by go together")
        fields = {f["name"] for f in schema["fields"]}
        for col in (*self.key, *self.cluster_by, *([self.partition_by] if self.partition_by else []), *(self.scope_by or ()),
                    *self.erase_by):
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
def table_schemas(include_staging: bool = False) -> dict[str, TableSpec]:
    """Every warehouse table, by table name (plus staging-only records if asked)."""
    specs: dict[str, TableSpec] = {}
    for name in names():
        schema = load(name)
        if "touchline" in schema and "table" in schema["touchline"]:
            spec = TableSpec(name, schema)
            if spec.name in specs:
                raise ValueError(f"table {spec.name!r} declared by two schemas")
            if include_staging or not spec.staging_only:
                specs[spec.name] = spec
    return specs


def table_schema(table: str) -> TableSpec:
    try:
        return table_schemas(include_staging=True)[table]
    except KeyError:
        raise KeyError(f"no table named {table!r}; known: {', '.join(sorted(table_schemas()))}") from None
