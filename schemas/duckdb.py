"""DuckDB DDL generated from the Avro table schemas."""

from __future__ import annotations

from . import TableSpec
from .model import Column, columns

_SCALARS = {
    "string": "VARCHAR",
    "int": "BIGINT",
    "float": "DOUBLE",
    "bool": "BOOLEAN",
    "bytes": "BLOB",
    "timestamp": "TIMESTAMP",
    "date": "DATE",
}


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def column_type(col: Column) -> str:
    if col.kind in _SCALARS:
        return _SCALARS[col.kind]
    if col.kind == "decimal":
        return f"DECIMAL({col.precision},{col.scale})"
    if col.kind == "record":
        return "STRUCT(" + ", ".join(f"{quote(f.name)} {column_type(f)}" for f in col.fields) + ")"
    if col.kind == "array":
        return column_type(col.item) + "[]"
    if col.kind == "map":
        return f"MAP(VARCHAR, {column_type(col.item)})"
    raise ValueError(f"no DuckDB type for {col}")


def create_table(spec: TableSpec, name: str | None = None, if_not_exists: bool = True) -> str:
    """``CREATE TABLE`` for a table spec (DuckDB has no partitioning; the key is not enforced
    as a constraint because writes replace by key explicitly)."""
    cols = ",\n  ".join(
        f"{quote(c.name)} {column_type(c)}{'' if c.nullable else ' NOT NULL'}" for c in columns(spec.schema)
    )
    exists = "IF NOT EXISTS " if if_not_exists else ""
    return f"CREATE TABLE {exists}{quote(name or spec.name)} (\n  {cols}\n)"


def comments(spec: TableSpec) -> list[str]:
    """``COMMENT ON`` statements carrying the Avro docs into the catalog."""
    def lit(text: str) -> str:
        return "'" + text.replace("'", "''") + "'"

    out = [f"COMMENT ON TABLE {quote(spec.name)} IS {lit(spec.doc)}"] if spec.doc else []
    for c in columns(spec.schema):
        if c.doc:
            out.append(f"COMMENT ON COLUMN {quote(spec.name)}.{quote(c.name)} IS {lit(c.doc)}")
    return out
