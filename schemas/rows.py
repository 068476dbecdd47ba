"""Row representation inside pipelines, and conversion from what readers return.

Inside Touchline a row is a dict in the Avro "datum" form of its schema: timestamps are ints
(microseconds since the epoch, UTC), dates are ints (days since the epoch), decimals are
``decimal.Decimal``, maps are dicts, arrays are lists, records are dicts. These are cheap to
pickle, compare and hash, and fastavro/Arrow writers take them as they are.

Readers hand back other forms (Arrow's ``to_pylist`` gives ``datetime``/``date`` objects and maps
as lists of pairs; BigQuery gives ISO strings or datetimes and maps as repeated key/value records);
:func:`converter` builds, once per table, a function turning such a row into the datum form.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, Callable

from . import TableSpec
from .model import Column, columns

EPOCH = dt.datetime(1970, 1, 1)
EPOCH_UTC = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
EPOCH_DATE = dt.date(1970, 1, 1)
ONE_MICRO = dt.timedelta(microseconds=1)


def to_micros(value: Any) -> int | None:
    if value is None or isinstance(value, int):
        return value
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace(" UTC", "+00:00"))
    if isinstance(value, (int, float)):
        return int(value * 1_000_000)
    if value.tzinfo is None:
        return (value - EPOCH) // ONE_MICRO
    return (value - EPOCH_UTC) // ONE_MICRO


def to_days(value: Any) -> int | None:
    if value is None or isinstance(value, int):
        return value
    if isinstance(value, str):
        value = dt.date.fromisoformat(value)
    if isinstance(value, dt.datetime):
        value = value.date()
    return (value - EPOCH_DATE).days


def _identity(value: Any) -> Any:
    return value


def column_converter(col: Column) -> Callable[[Any], Any]:
    """A function normalizing one column's value read back from a warehouse to the datum form."""
    kind = col.kind
    if kind == "timestamp":
        return to_micros
    if kind == "date":
        return to_days
    if kind == "decimal":
        # Warehouses widen scales (BigQuery NUMERIC has 9 digits): back to the schema's scale, so a
        # row read back equals the row written and fits the Avro decimal again.
        quantum = Decimal(1).scaleb(-(col.scale or 0))
        return lambda v: None if v is None else (v if isinstance(v, Decimal) else Decimal(str(v))).quantize(quantum)
    if kind == "int":
        return lambda v: None if v is None else int(v)
    if kind == "float":
        return lambda v: None if v is None else float(v)
    if kind == "record":
        fields = [(f.name, column_converter(f)) for f in col.fields]
        return lambda v: None if v is None else {name: conv(v.get(name)) for name, conv in fields}
    if kind == "array":
        item = column_converter(col.item)
        return lambda v: [] if v is None else [item(x) for x in v]
    if kind == "map":
        value_conv = column_converter(col.item)

        def conv_map(v):
            if v is None:
                return {}
            if isinstance(v, dict):
                return {k: value_conv(x) for k, x in v.items()}
            pairs = ((p["key"], p["value"]) if isinstance(p, dict) else p for p in v)
            return {k: value_conv(x) for k, x in pairs}

        return conv_map
    return _identity


def converter(spec: TableSpec) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A function normalizing a row read back from any warehouse to the datum form."""
    plan = [(c.name, column_converter(c)) for c in columns(spec.schema)]

    def convert(row: dict[str, Any]) -> dict[str, Any]:
        return {name: conv(row.get(name)) for name, conv in plan}

    return convert
