"""A neutral column model derived from Avro, shared by every warehouse mapping.

Avro is richer than some targets and poorer than others; this module decides once how each Avro
construct maps to a column (nullable unions, logical types, arrays, maps, nested records) so that
DuckDB, BigQuery and Arrow agree on names, nesting and nullability:

=====================================  ==========  =================  ======================
Avro                                   Column      DuckDB             BigQuery
=====================================  ==========  =================  ======================
string / enum                          string      VARCHAR            STRING
int / long                             int         BIGINT             INT64
float / double                         float       DOUBLE             FLOAT64
boolean                                bool        BOOLEAN            BOOL
bytes                                  bytes       BLOB               BYTES
long timestamp-micros/millis           timestamp   TIMESTAMP (UTC)    TIMESTAMP
int date                               date        DATE               DATE
bytes decimal(p<=38, s<=9)             decimal     DECIMAL(p,s)       NUMERIC
array<T>                               repeated    T[]                REPEATED T
map<T>                                 map         MAP(VARCHAR, T)    REPEATED RECORD<key, value>
record                                 record      STRUCT(...)        RECORD
["null", T]                            nullable    NULL allowed       NULLABLE
=====================================  ==========  =================  ======================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PRIMITIVES = {
    "string": "string",
    "enum": "string",
    "int": "int",
    "long": "int",
    "float": "float",
    "double": "float",
    "boolean": "bool",
    "bytes": "bytes",
}


@dataclass(frozen=True)
class Column:
    """A column (or nested field) in target-neutral terms."""

    name: str
    kind: str  # string int float bool bytes timestamp date decimal record array map
    nullable: bool = False
    doc: str = ""
    precision: int | None = None
    scale: int | None = None
    fields: tuple["Column", ...] = field(default=())  # record fields
    item: "Column | None" = None  # array item / map value


def _unwrap_union(avro_type: Any) -> tuple[Any, bool]:
    if isinstance(avro_type, list):
        non_null = [t for t in avro_type if t != "null"]
        if len(non_null) != 1:
            raise ValueError(f"only ['null', T] unions map to columns, got {avro_type!r}")
        return non_null[0], len(non_null) != len(avro_type)
    return avro_type, False


def column(name: str, avro_type: Any, doc: str = "", named: dict[str, Column] | None = None) -> Column:
    """Map one Avro type to a :class:`Column`."""
    named = {} if named is None else named
    inner, nullable = _unwrap_union(avro_type)
    if isinstance(inner, str):
        if inner in PRIMITIVES:
            return Column(name, PRIMITIVES[inner], nullable, doc)
        if inner in named:  # reference to an earlier named type
            ref = named[inner]
            return Column(name, ref.kind, nullable, doc, ref.precision, ref.scale, ref.fields, ref.item)
        raise ValueError(f"unknown Avro type {inner!r} for {name}")
    kind = inner["type"]
    logical = inner.get("logicalType")
    if logical in ("timestamp-micros", "timestamp-millis"):
        return Column(name, "timestamp", nullable, doc)
    if logical == "date":
        return Column(name, "date", nullable, doc)
    if logical == "decimal":
        return Column(name, "decimal", nullable, doc, inner["precision"], inner.get("scale", 0))
    if kind == "record":
        fields = tuple(column(f["name"], f["type"], f.get("doc", ""), named) for f in inner["fields"])
        col = Column(name, "record", nullable, doc or inner.get("doc", ""), fields=fields)
        named[inner["name"]] = col
        if "namespace" in inner:
            named[f'{inner["namespace"]}.{inner["name"]}'] = col
        return col
    if kind == "enum":
        col = Column(name, "string", nullable, doc)
        named[inner["name"]] = col
        return col
    if kind == "array":
        return Column(name, "array", nullable, doc, item=column("item", inner["items"], "", named))
    if kind == "map":
        return Column(name, "map", nullable, doc, item=column("value", inner["values"], "", named))
    if kind in PRIMITIVES:
        return Column(name, PRIMITIVES[kind], nullable, doc)
    raise ValueError(f"unsupported Avro type {inner!r} for {name}")


def columns(schema: dict[str, Any]) -> list[Column]:
    """The top-level columns of a record schema."""
    named: dict[str, Column] = {}
    return [column(f["name"], f["type"], f.get("doc", ""), named) for f in schema["fields"]]
