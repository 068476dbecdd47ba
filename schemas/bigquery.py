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
