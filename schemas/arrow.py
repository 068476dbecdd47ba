"""Arrow schemas generated from Avro (staging Parquet files for DuckDB are written with these)."""

from __future__ import annotations

import pyarrow as pa

from . import TableSpec
from .model import Column, columns

_SCALARS = {
    "string": pa.string(),
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "bytes": pa.binary(),
    "timestamp": pa.timestamp("us"),
    "date": pa.date32(),
}


def arrow_type(col: Column) -> pa.DataType:
    if col.kind in _SCALARS:
        return _SCALARS[col.kind]
    if col.kind == "decimal":
        return pa.decimal128(col.precision, col.scale)
    if col.kind == "record":
        return pa.struct([arrow_field(f) for f in col.fields])
    if col.kind == "array":
        return pa.list_(arrow_field(col.item))
    if col.kind == "map":
        return pa.map_(pa.string(), arrow_type(col.item))
    raise ValueError(f"no Arrow type for {col}")


def arrow_field(col: Column) -> pa.Field:
    return pa.field(col.name, arrow_type(col), nullable=col.nullable)


def arrow_schema(spec: TableSpec) -> pa.Schema:
    return pa.schema([arrow_field(c) for c in columns(spec.schema)])
