"""BigQuery table schemas generated from Avro, in the REST API's JSON form.

The JSON form is what ``google.cloud.bigquery.SchemaField.from_api_repr`` accepts, what ``bq mk``
and Terraform's ``google_bigquery_table.schema`` take, so one generator serves the client, the CLI
and infrastructure code without importing any Google library here.
"""

from __future__ import annotations

from typing import Any

from . import TableSpec
from .model import Column, columns

_SCALARS = {
    "string": "STRING",
    "int": "INT64",
    "float": "FLOAT64",
    "bool": "BOOL",
    "bytes": "BYTES",
    "timestamp": "TIMESTAMP",
    "date": "DATE",
    "decimal": "NUMERIC",
}


def field(col: Column, mode: str | None = None) -> dict[str, Any]:
    mode = mode or ("NULLABLE" if col.nullable else "REQUIRED")
    out: dict[str, Any] = {"name": col.name, "mode": mode}
    if col.kind == "array":
        inner = field(col.item, "REPEATED")
        inner.update(name=col.name, description=col.doc) if col.doc else inner.update(name=col.name)
        return inner
    if col.kind == "map":
        value = field(col.item, "NULLABLE" if col.item.nullable else "REQUIRED")
        value["name"] = "value"
        out.update(mode="REPEATED", type="RECORD",
                   fields=[{"name": "key", "type": "STRING", "mode": "REQUIRED"}, value])
    elif col.kind == "record":
        out.update(type="RECORD", fields=[field(f) for f in col.fields])
    elif col.kind == "decimal":
        if col.scale > 9 or col.precision - col.scale > 29:
            out["type"] = "BIGNUMERIC"
        else:
            out["type"] = "NUMERIC"
        out.update(precision=str(col.precision), scale=str(col.scale))
    else:
        out["type"] = _SCALARS[col.kind]
    if col.doc:
        out["description"] = col.doc
    return out


def table_fields(spec: TableSpec) -> list[dict[str, Any]]:
    return [field(c) for c in columns(spec.schema)]


def column_type(field_json: dict[str, Any]) -> str:
    """The GoogleSQL type of a generated field, for DDL (``ALTER TABLE ... ADD COLUMN``):
    ``ARRAY<STRUCT<key STRING, value STRING>>``, ``NUMERIC(18, 2)``, ..."""
    kind = field_json["type"]
    if kind == "RECORD":
        inner = "STRUCT<" + ", ".join(f"{f['name']} {column_type(f)}" for f in field_json["fields"]) + ">"
    elif kind in ("NUMERIC", "BIGNUMERIC") and "precision" in field_json:
        inner = f"{kind}({field_json['precision']}, {field_json.get('scale', '0')})"
    else:
        inner = kind
    return f"ARRAY<{inner}>" if field_json.get("mode") == "REPEATED" else inner


# -- load files -------------------------------------------------------------------------------
# BigQuery loads Avro ``map<T>`` as a REPEATED RECORD<key, value>, but not every implementation
# does (the bqemulator hands the map to DuckDB, which cannot cast MAP to a list of structs). Load
# files therefore spell maps out as arrays of key/value records: the same columns everywhere.


def _load_type(avro_type: Any, path: str) -> Any:
    if isinstance(avro_type, list):
        return [_load_type(t, path) for t in avro_type]
    if not isinstance(avro_type, dict):
        return avro_type
    kind = avro_type["type"]
    if kind == "map":
        entry = {"type": "record", "name": f"{path}_Entry", "fields": [
            {"name": "key", "type": "string"},
            {"name": "value", "type": _load_type(avro_type["values"], f"{path}_value")},
        ]}
        return {"type": "array", "items": entry}
    if kind == "array":
        return {**avro_type, "items": _load_type(avro_type["items"], f"{path}_item")}
    if kind == "record":
        fields = []
        for f in avro_type["fields"]:
            new = {**f, "type": _load_type(f["type"], f"{avro_type['name']}_{f['name']}")}
            if isinstance(f.get("default"), dict):  # a map's default {} becomes the array's []
                new["default"] = []
            fields.append(new)
        return {**avro_type, "fields": fields}
    return avro_type


def load_avro_schema(spec: TableSpec) -> dict[str, Any]:
    """The Avro schema of a table's BigQuery load files (maps as arrays of key/value records)."""
    schema = {k: v for k, v in spec.schema.items() if k != "touchline"}
    return _load_type(schema, spec.schema["name"])


def _load_converter(col: Column):
    """A function turning a datum of ``col`` into its load form, or None when nothing changes."""
    if col.kind == "map":
        value = _load_converter(col.item)
        if value is None:
            return lambda v: None if v is None else [{"key": k, "value": x} for k, x in sorted(v.items())]
        return lambda v: None if v is None else [{"key": k, "value": value(x)} for k, x in sorted(v.items())]
    if col.kind == "array":
        item = _load_converter(col.item)
        return None if item is None else (lambda v: None if v is None else [item(x) for x in v])
    if col.kind == "record":
        plan = [(f.name, _load_converter(f)) for f in col.fields]
        if all(conv is None for _, conv in plan):
            return None
        return lambda v: None if v is None else {**v, **{n: conv(v.get(n)) for n, conv in plan if conv is not None}}
    return None


def load_datum(spec: TableSpec):
    """A function turning a row (datum form) into the form :func:`load_avro_schema` describes."""
    plan = [(c.name, conv) for c in columns(spec.schema) if (conv := _load_converter(c)) is not None]
    if not plan:
        return lambda row: row

    def convert(row: dict[str, Any]) -> dict[str, Any]:
        out = dict(row)
        for name, conv in plan:
            out[name] = conv(row.get(name))
        return out

    return convert
