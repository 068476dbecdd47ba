"""Schema-driven validation of raw records: conform a decoded JSON object or Avro record to the
channel's Avro schema, filling defaults, and classify what is wrong with it.

Compiled once per schema into closures (no per-record schema walking). Failures raise
:class:`~touchline.transforms.errors.TouchpointError` with one of these reasons:

* ``missing_field`` -- a required field is absent or null
* ``wrong_type`` -- a value has the wrong JSON/Avro type
* ``unknown_event_type`` -- ``event_type`` is not one of the schema's symbols
* ``invalid_value`` -- any other enum value outside its symbols

Fields the schema does not know are returned separately (they are preserved as attributes, never
dropped), nested ones under their dotted path (``device.vendor``, ``items[0].coupon``).
Two extensions for external formats (source adapters):

* a ``{"type": "string", "logicalType": "json"}`` field takes any JSON value as it is (an open-ended
  object such as Segment's ``properties``; the adapter reads and flattens it);
* ``Conformer(..., int_strings=True)`` accepts decimal strings for int/long values (BigQuery's JSON
  exports write INT64 as strings to keep 64-bit precision). Values of records read from Avro files written with an older or newer schema go through
the same path, so schema evolution (added optional fields with defaults) needs nothing special.
"""

from __future__ import annotations

from typing import Any, Callable

from .errors import TouchpointError

Check = Callable[[Any, str], Any]

_MISSING = object()


def _type_name(value: Any) -> str:
    return type(value).__name__


#: keys of the ``named`` dict that carry compile options rather than named types
_EXTRAS = "\x00extras"
_INT_STRINGS = "\x00int_strings"


def _any_json(value: Any, path: str) -> Any:
    return value


def _check_int_or_string(value: Any, path: str) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():
            return int(text)
    return _check_int(value, path)


def _compile(avro_type: Any, enum_reason: str, named: dict[str, Check]) -> tuple[Check, bool]:
    """Return (check, nullable). check(value, path) returns the conformed value or raises."""
    if isinstance(avro_type, list):
        non_null = [t for t in avro_type if t != "null"]
        nullable = len(non_null) != len(avro_type)
        if len(non_null) != 1:
            raise ValueError(f"unsupported union {avro_type!r}")
        inner, _ = _compile(non_null[0], enum_reason, named)
        return inner, nullable
    if isinstance(avro_type, str):
        if avro_type in named:
            return named[avro_type], False
        if avro_type in ("int", "long") and named.get(_INT_STRINGS):
            return _check_int_or_string, False
        return _PRIMITIVE_CHECKS[avro_type], False
    kind = avro_type["type"]
    if avro_type.get("logicalType") == "json":
        return _any_json, False
    if kind == "enum":
        symbols = frozenset(avro_type["symbols"])

        def check_enum(value: Any, path: str) -> Any:
            if not isinstance(value, str):
                raise TouchpointError("wrong_type", f"{path}: expected a string, got {_type_name(value)} {value!r:.40}")
            if value not in symbols:
                raise TouchpointError(enum_reason, f"{path}: {value!r:.60} is not one of {sorted(symbols)}")
            return value

        named[avro_type["name"]] = check_enum
        return check_enum, False
    if kind == "record":
        conform = _compile_record(avro_type, named)
        extras = named.get(_EXTRAS)

        def check_record(value: Any, path: str) -> Any:
            if not isinstance(value, dict):
                raise TouchpointError("wrong_type", f"{path}: expected an object, got {_type_name(value)}")
            record, extra = conform(value, path + ".")
            if extra and extras is not None:
                extras.extend((f"{path}.{k}", v) for k, v in extra.items())
            return record

        named[avro_type["name"]] = check_record
        return check_record, False
    if kind == "map":
        values, nullable_values = _compile(avro_type["values"], enum_reason, named)

        def check_map(value: Any, path: str) -> Any:
            if not isinstance(value, dict):
                raise TouchpointError("wrong_type", f"{path}: expected an object, got {_type_name(value)}")
            out = {}
            for k, v in value.items():
                if v is None and not nullable_values:
                    # JSON maps of strings often carry nulls; keep them as absent, not as errors.
                    continue
                out[str(k)] = values(v, f"{path}.{k}") if v is not None else None
            return out

        return check_map, False
    if kind == "array":
        items, _ = _compile(avro_type["items"], enum_reason, named)

        def check_array(value: Any, path: str) -> Any:
            if not isinstance(value, list):
                raise TouchpointError("wrong_type", f"{path}: expected an array, got {_type_name(value)}")
            return [items(v, f"{path}[{i}]") for i, v in enumerate(value)]

        return check_array, False
    if kind in _PRIMITIVE_CHECKS:  # {"type": "long", "logicalType": ...}
        if kind in ("int", "long") and named.get(_INT_STRINGS):
            return _check_int_or_string, False
        return _PRIMITIVE_CHECKS[kind], False
    raise ValueError(f"unsupported Avro type {avro_type!r}")


def _check_string(value: Any, path: str) -> Any:
    if isinstance(value, str):
        return value
    raise TouchpointError("wrong_type", f"{path}: expected a string, got {_type_name(value)} {value!r:.40}")


def _check_int(value: Any, path: str) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise TouchpointError("wrong_type", f"{path}: expected an integer, got {_type_name(value)} {value!r:.40}")


def _check_float(value: Any, path: str) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise TouchpointError("wrong_type", f"{path}: expected a number, got {_type_name(value)} {value!r:.40}")


def _check_bool(value: Any, path: str) -> Any:
    if isinstance(value, bool):
        return value
    raise TouchpointError("wrong_type", f"{path}: expected true/false, got {_type_name(value)} {value!r:.40}")


def _check_bytes(value: Any, path: str) -> Any:
    if isinstance(value, (bytes, str)):
        return value
    raise TouchpointError("wrong_type", f"{path}: expected bytes, got {_type_name(value)}")


_PRIMITIVE_CHECKS: dict[str, Check] = {
    "string": _check_string,
    "int": _check_int,
    "long": _check_int,
    "float": _check_float,
    "double": _check_float,
    "boolean": _check_bool,
    "bytes": _check_bytes,
}


def _compile_record(schema: dict[str, Any], named: dict[str, Check], top_reasons: dict[str, str] | None = None):
    plan = []
    for f in schema["fields"]:
        reason = (top_reasons or {}).get(f["name"], "invalid_value")
        check, nullable = _compile(f["type"], reason, named)
        plan.append((f["name"], check, nullable, f.get("default", _MISSING)))
    known = frozenset(name for name, *_ in plan)

    def conform(datum: dict[str, Any], prefix: str = "") -> tuple[dict[str, Any], dict[str, Any]]:
        out: dict[str, Any] = {}
        for name, check, nullable, default in plan:
            value = datum.get(name, _MISSING)
            if value is _MISSING:
                if default is _MISSING:
                    raise TouchpointError("missing_field", f"{prefix}{name}: required field is missing")
                value = default() if callable(default) else (dict(default) if isinstance(default, dict) else default)
                out[name] = value
                continue
            if value is None:
                if not nullable:
                    raise TouchpointError("missing_field", f"{prefix}{name}: required field is null")
                out[name] = None
                continue
            out[name] = check(value, prefix + name)
        if len(datum) == len(out) and all(k in known for k in datum):
            return out, {}
        return out, {k: v for k, v in datum.items() if k not in known}

    return conform


def _fast_check(avro_type: Any) -> tuple[str, Any] | None:
    """For the generated fast path: (kind, data) of a cheap exact-type test, or None (use the slow check)."""
    inner = [t for t in avro_type if t != "null"][0] if isinstance(avro_type, list) else avro_type
    if isinstance(inner, str):
        if inner == "string":
            return ("cls", "str")
        if inner in ("int", "long"):
            return ("cls", "int")
        if inner == "boolean":
            return ("cls", "bool")
        return None
    if inner.get("type") == "enum":
        return ("enum", frozenset(inner["symbols"]))
    if inner.get("type") == "map" and inner.get("values") == "string":
        return ("strmap", None)
    if inner.get("type") in ("long", "int") and "logicalType" in inner:
        return ("cls", "int")
    return None


def _generate(schema: dict[str, Any], reasons: dict[str, str], extras: list | None = None, int_strings: bool = False):
    """Generate a specialized conform function: exact-type fast paths inline, the compiled
    closures of :func:`_compile` only when a value needs conversion or is wrong (for the error)."""
    named: dict[str, Any] = {_EXTRAS: extras, _INT_STRINGS: int_strings}
    env: dict[str, Any] = {"_M": _MISSING, "TE": TouchpointError}
    lines = ["def conform(d):", "    get = d.get", "    out = {}"]
    for i, f in enumerate(schema["fields"]):
        name = f["name"]
        check, nullable = _compile(f["type"], reasons.get(name, "invalid_value"), named)
        env[f"chk{i}"] = check
        has_default = "default" in f
        fast = _fast_check(f["type"])
        lines.append(f"    v = get({name!r}, _M)")
        lines.append("    if v is _M:")
        if has_default:
            default = f["default"]
            if isinstance(default, (dict, list)):
                env[f"dflt{i}"] = default
                lines.append(f"        v = dflt{i}.copy()")
            else:
                lines.append(f"        v = {default!r}")
        else:
            lines.append(f"        raise TE('missing_field', {name + ': required field is missing'!r})")
        lines.append("    elif v is None:")
        if nullable:
            lines.append("        pass")
        else:
            lines.append(f"        raise TE('missing_field', {name + ': required field is null'!r})")
        if fast is None:
            lines.append(f"    else:\n        v = chk{i}(v, {name!r})")
        elif fast[0] == "cls":
            lines.append(f"    elif v.__class__ is not {fast[1]}:\n        v = chk{i}(v, {name!r})")
        elif fast[0] == "enum":
            env[f"sym{i}"] = fast[1]
            lines.append(f"    elif v.__class__ is not str or v not in sym{i}:\n        v = chk{i}(v, {name!r})")
        else:  # map of strings
            lines.append(
                f"    elif v.__class__ is not dict or not all(x.__class__ is str for x in v.values()):\n"
                f"        v = chk{i}(v, {name!r})"
            )
        lines.append(f"    out[{name!r}] = v")
    env["KNOWN"] = frozenset(f["name"] for f in schema["fields"])
    lines.append("    if KNOWN.issuperset(d):\n        return out, {}")
    lines.append("    return out, {k: v for k, v in d.items() if k not in KNOWN}")
    exec("\n".join(lines), env)  # noqa: S102 -- code generated from our own schema, no user input
    return env["conform"]


class Conformer:
    """Validates and conforms records to one Avro record schema.

    ``reasons`` maps a top-level field name to the reason used when its enum value is unknown
    (``event_type`` -> ``unknown_event_type`` by default). Top-level fields run through generated
    code (exact-type checks inline); nested values and every error go through the compiled checks,
    so both paths give the same results and messages.
    """

    def __init__(self, schema: dict[str, Any], reasons: dict[str, str] | None = None, int_strings: bool = False):
        # unknown fields of nested records, collected while one datum is conformed (a Conformer
        # serves one DoFn instance, i.e. one thread)
        self._nested: list[tuple[str, Any]] = []
        self._conform = _generate(schema, reasons or {"event_type": "unknown_event_type"}, self._nested, int_strings)

    def __call__(self, datum: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """(conformed record, unknown fields: top-level by name, nested by dotted path). Raises TouchpointError."""
        nested = self._nested
        if nested:
            nested.clear()
        try:
            record, unknown = self._conform(datum)
        except BaseException:
            nested.clear()
            raise
        if nested:
            unknown = {**unknown, **dict(nested)}
            nested.clear()
        return record, unknown
