"""Contract test kit: what every source (channel or adapter) and every signal plug-in must satisfy.

Plug-in authors install Touchline, so the kit ships in the package. The ``check_*`` functions need no
test framework: they return a list of problems (empty = the contract holds). The ``assert_*``
helpers raise :class:`ContractError` (an ``AssertionError``, so pytest shows it as a failure) with
every problem listed::

    from touchline.transforms.contract import SourceCases, assert_source_contract

    def test_chat_source_contract():
        assert_source_contract("chat", SourceCases.from_folder("tests/fixtures/chat"))

A source's contract:

* **schema** -- its raw Avro schema is installed, parses, and compiles into a validator; the
  registry knows the source; an adapter maps only onto canonical channels, and every target of its
  ``EVENT_MAP`` is an event type of a canonical channel;
* **good input** -- every good fixture record becomes exactly one touchpoint that is a valid
  ``touchpoints`` row (Avro-validated), of a channel the source produces, with ``origin`` = the source;
* **bad input** -- every bad fixture record becomes exactly one dead letter with the expected reason
  (a valid ``dead_letters`` row); and records derived from a good one (truncated JSON, a list, a
  blank line, undecodable bytes, each required field removed) dead-letter with the matching reason;
* **deterministic** -- a second, independently set-up parser gives identical output;
* **pickles** -- the parse DoFn and the source spec survive the picklers Beam uses (cloudpickle, dill
  when installed, and the standard pickle) and behave the same after the round trip;
* **no clear-text PII** -- no e-mail address or phone number of the fixtures appears in any output.

A signal plug-in's contract: registered under its name, parameters validated, instances pickle,
``matches`` returns a bool, is deterministic, never raises on odd touchpoints (no attributes, text
where a number is expected, nulls), gives the expected answers on the given examples, and works
inside a model (the classifier names the signal for the matching examples).
"""

from __future__ import annotations

import copy
import datetime as dt
import io
import json
import os
import pickle
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import fastavro

from .. import schemas
from . import channels
from .context import RunContext
from .errors import _EMAIL, _PHONE
from .identifiers import DEMO_KEY, Hasher
from .validate import Conformer

Payload = bytes | dict


class ContractError(AssertionError):
    """The contract does not hold; the message lists every problem."""

    def __init__(self, subject: str, problems: Sequence[str]):
        super().__init__(f"{subject} breaks the plug-in contract:\n" + "\n".join(f"  - {p}" for p in problems))
        self.problems = list(problems)


@dataclass
class SourceCases:
    """Fixture records of a source: ``good`` ones must become touchpoints, ``bad`` ones dead letters
    with the given reason. Payloads are JSONL lines (bytes) or decoded Avro records (dicts)."""

    good: list[Payload] = field(default_factory=list)
    bad: list[tuple[Payload, str]] = field(default_factory=list)
    #: clear-text PII that must not appear in any output (e-mails and phones found in the
    #: fixtures are added automatically)
    pii: list[str] = field(default_factory=list)

    @classmethod
    def from_folder(cls, folder: str) -> "SourceCases":
        """``good.jsonl``; ``bad.jsonl`` with ``bad.reasons`` (one reason per line of bad.jsonl)."""
        good = _lines(os.path.join(folder, "good.jsonl"))
        bad_path = os.path.join(folder, "bad.jsonl")
        bad: list[tuple[Payload, str]] = []
        if os.path.exists(bad_path):
            lines = _lines(bad_path)
            with open(os.path.join(folder, "bad.reasons"), encoding="utf-8") as fh:
                reasons = [r.strip() for r in fh if r.strip()]
            if len(reasons) != len(lines):
                raise ValueError(f"{folder}: bad.jsonl has {len(lines)} lines but bad.reasons {len(reasons)} reasons")
            bad = list(zip(lines, reasons))
        return cls(good=good, bad=bad)


def _lines(path: str) -> list[bytes]:
    with open(path, "rb") as fh:
        data = fh.read()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return [line.rstrip(b"\r") for line in lines]


def _ctx() -> RunContext:
    return RunContext(run_id="contract", logical_date=dt.date(2026, 10, 31), hash_key_source="demo")


def _parse_fn(name: str):
    from .parse import ParseFn

    return ParseFn(name, _ctx())


def run_parse(fn, payloads: Iterable[Payload], prefix: str = "fixture") -> list[tuple[str, dict]]:
    """Feed payloads through a parse DoFn the way a runner would (setup, bundle, process):
    ``[("touchpoint" | "dead_letter", row), ...]`` in input order."""
    from apache_beam.pvalue import TaggedOutput

    if not getattr(fn, "_set_up", False):
        fn.setup()
        fn._set_up = True
    fn.start_bundle()
    out = []
    for i, payload in enumerate(payloads):
        for result in fn.process((f"{prefix}@{i}", payload, None)):
            if isinstance(result, TaggedOutput):
                out.append(("dead_letter", result.value))
            else:
                out.append(("touchpoint", result))
    fn.finish_bundle()
    return out


def _valid(schema_name: str, row: dict) -> str | None:
    try:
        buf = io.BytesIO()
        fastavro.writer(buf, schemas.parsed(schema_name), [row], validator=True)
    except Exception as exc:  # noqa: BLE001 -- reported as a problem
        return f"{type(exc).__name__}: {str(exc)[:300]}"
    return None


def canonical_event_types() -> dict[str, frozenset[str]]:
    """Event types of each canonical channel (the symbols of its raw schema's event_type enum)."""
    out = {}
    for name in channels.canonical():
        spec = channels.get(name)
        for f in schemas.load(spec.schema_name)["fields"]:
            if f["name"] == "event_type":
                kind = f["type"][1] if isinstance(f["type"], list) else f["type"]
                if isinstance(kind, dict) and kind.get("type") == "enum":
                    out[name] = frozenset(kind["symbols"])
    return out


def _derived_bad(good: Payload, schema: dict) -> list[tuple[Payload, str]]:
    """Malformed variants of a good record and the reason each must get."""
    cases: list[tuple[Payload, str]] = [(b"", "empty_record"), (b"[1, 2]", "not_an_object"), (b"\xff\xfe\x00", "invalid_encoding")]
    datum = json.loads(good) if isinstance(good, bytes) else good
    text = json.dumps(datum)
    cases.append((text[: len(text) // 2].encode(), "invalid_json"))
    for f in schema["fields"]:
        nullable = isinstance(f["type"], list) and "null" in f["type"]
        if "default" not in f and not nullable and f["name"] in datum:
            cases.append((json.dumps({k: v for k, v in datum.items() if k != f["name"]}).encode(), "missing_field"))
    return cases


def _pii_strings(cases: SourceCases) -> list[str]:
    found = set(cases.pii)
    for payload in [*cases.good, *(p for p, _ in cases.bad)]:
        text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else json.dumps(payload)
        found.update(m.group(0) for m in _EMAIL.finditer(text))
        found.update(m.group(0) for m in _PHONE.finditer(text))
    return sorted(s for s in found if len(s) >= 6)


def _pickle_round_trips(obj: Any) -> list[tuple[str, Any]]:
    """Round trips through Beam's picklers: cloudpickle (Beam's default), dill when installed
    (``--pickle_library=dill``), and the standard library's."""
    import importlib.util

    from apache_beam.internal import cloudpickle_pickler

    out = [("cloudpickle", cloudpickle_pickler.loads(cloudpickle_pickler.dumps(obj)))]
    if importlib.util.find_spec("dill") is not None:
        from apache_beam.internal import dill_pickler

        out.append(("dill", dill_pickler.loads(dill_pickler.dumps(obj))))
    out.append(("pickle", pickle.loads(pickle.dumps(obj))))
    return out


def _comparable(results: list[tuple[str, dict]]) -> str:
    return json.dumps(results, sort_keys=True, default=str)


def check_source(name: str, cases: SourceCases) -> list[str]:
    """Every problem with source ``name`` against its fixture cases (see the module doc)."""
    problems: list[str] = []
    # -- schema and registration
    try:
        spec = channels.get(name)
    except KeyError as exc:
        return [str(exc)]
    if spec.schema_name not in schemas.names():
        return [f"schema {spec.schema_name!r} is not installed (ship it under the touchline.schemas entry point group)"]
    try:
        schema = schemas.load(spec.schema_name)
        fastavro.parse_schema(schema)
        Conformer(schema, dict(spec.enum_reasons), int_strings=spec.int_strings)
    except Exception as exc:  # noqa: BLE001
        return [f"schema {spec.schema_name}: {type(exc).__name__}: {exc}"]
    canonical = set(channels.canonical())
    produced = set(spec.channels_produced())
    if not produced <= canonical:
        problems.append(f"produces {sorted(produced - canonical)}, which are not channels ({sorted(canonical)})")
    if spec.kind == "adapter":
        event_types = canonical_event_types()
        allowed = set().union(*event_types.values()) if event_types else set()
        for external, target in getattr(spec, "EVENT_MAP", {}).items():
            if target not in allowed:
                problems.append(f"EVENT_MAP[{external!r}] = {target!r} is not an event type of a canonical channel")
    if not cases.good:
        problems.append("no good fixture records: the contract needs at least one")
        return problems
    # -- good and bad input
    results = run_parse(_parse_fn(name), cases.good, "good")
    if len(results) != len(cases.good):
        problems.append(f"{len(cases.good)} good records gave {len(results)} outputs (expected one each)")
    for i, (kind, row) in enumerate(results):
        if kind != "touchpoint":
            problems.append(f"good record {i} became a dead letter: {row['reason']}: {row['error_message']}")
            continue
        invalid = _valid("touchpoint", row)
        if invalid:
            problems.append(f"good record {i}: the touchpoint is not a valid touchpoints row ({invalid})")
        if row["channel"] not in produced:
            problems.append(f"good record {i}: channel {row['channel']!r} is not one the source declares ({sorted(produced)})")
        if row.get("origin") != name:
            problems.append(f"good record {i}: origin is {row.get('origin')!r}, expected {name!r}")
        if not row["event_id"]:
            problems.append(f"good record {i}: empty event_id")
    bad = list(cases.bad) + _derived_bad(cases.good[0], schema)
    results = run_parse(_parse_fn(name), [p for p, _ in bad], "bad")
    if len(results) != len(bad):
        problems.append(f"{len(bad)} bad records gave {len(results)} outputs (expected one each)")
    for i, ((payload, reason), (kind, row)) in enumerate(zip(bad, results)):
        label = f"bad record {i} ({payload[:60]!r})" if isinstance(payload, bytes) else f"bad record {i}"
        if kind != "dead_letter":
            problems.append(f"{label} became a touchpoint; expected a dead letter with reason {reason}")
            continue
        if row["reason"] != reason:
            problems.append(f"{label}: reason {row['reason']} ({row['error_message']}), expected {reason}")
        if row["channel"] != name:
            problems.append(f"{label}: dead letter channel {row['channel']!r}, expected {name!r}")
        invalid = _valid("dead_letter", row)
        if invalid:
            problems.append(f"{label}: not a valid dead_letters row ({invalid})")
    # -- determinism and pickling
    everything = [*cases.good, *(p for p, _ in bad)]
    first = _comparable(run_parse(_parse_fn(name), everything))
    if _comparable(run_parse(_parse_fn(name), everything)) != first:
        problems.append("not deterministic: two parsers gave different outputs for the same input")
    try:
        round_trips = _pickle_round_trips(_parse_fn(name))
    except Exception as exc:  # noqa: BLE001
        problems.append(f"the parse DoFn does not pickle: {type(exc).__name__}: {exc}")
        round_trips = []
    for label, fn in round_trips:
        try:
            again = _comparable(run_parse(fn, everything))
        except Exception as exc:  # noqa: BLE001
            problems.append(f"the parse DoFn fails after a {label} round trip: {type(exc).__name__}: {exc}")
            continue
        if again != first:
            problems.append(f"the parse DoFn gives other output after a {label} round trip")
    try:
        _pickle_round_trips(spec)
    except Exception as exc:  # noqa: BLE001
        problems.append(f"the {type(spec).__name__} instance does not pickle: {type(exc).__name__}: {exc}")
    # -- privacy
    for value in _pii_strings(cases):
        variants = {value, value.strip(), value.strip().lower()}
        leaked = [v for v in variants if v and v in first]
        if leaked:
            problems.append(f"clear-text PII {leaked[0]!r} appears in the output (touchpoint attributes or dead letters)")
    return problems


def assert_source_contract(name: str, cases: SourceCases) -> None:
    problems = check_source(name, cases)
    if problems:
        raise ContractError(f"source {name!r}", problems)


# ------------------------------------------------------------------------------ signal plug-ins
def _odd_touchpoints(examples: Sequence[Mapping[str, Any]]) -> list[dict]:
    keys = sorted({k for tp in examples for k in (tp.get("attributes") or {})})
    base = dict(examples[0]) if examples else {"channel": "web", "event_type": "page_view"}
    odd = [{**base, "attributes": {}}, {"channel": "web", "event_type": "page_view", "attributes": {}}]
    for junk in ("", "abc", "NaN", "-1", "1e309", "null", "[1]", "<email:00>"):
        odd.append({**base, "attributes": {k: junk for k in keys}})
    return odd


def check_signal_plugin(name: str, params: Mapping[str, Any], matching: Sequence[Mapping[str, Any]],
                        not_matching: Sequence[Mapping[str, Any]] = ()) -> list[str]:
    """Every problem with the signal plug-in ``name`` built with ``params`` (see the module doc).
    ``matching`` / ``not_matching``: touchpoints (rows, at least channel, event_type, attributes)."""
    from .scoring import plugins
    from .scoring.model import load_model, parse_model
    from .scoring.signals import Classifier

    problems: list[str] = []
    try:
        cls = plugins.get(name)
    except KeyError:
        return [f"no signal plug-in named {name!r} is registered (known: {', '.join(sorted(plugins.registry()))})"]
    except Exception as exc:  # noqa: BLE001 -- PluginError of any plug-in in the group
        return [str(exc)]
    try:
        plugin = cls(**dict(params))
    except Exception as exc:  # noqa: BLE001
        return [f"cannot be built with params {dict(params)!r}: {type(exc).__name__}: {exc}"]
    try:
        cls(**{**dict(params), "__not_a_parameter__": 1})
        problems.append("accepts an unknown parameter (check_params must reject it)")
    except ValueError:
        pass
    except Exception as exc:  # noqa: BLE001
        problems.append(f"an unknown parameter raises {type(exc).__name__}, not ValueError (the model loader reports ValueErrors)")
    if not matching:
        problems.append("no matching example: the contract needs at least one touchpoint the signal fires on")
    samples = [(tp, True) for tp in matching] + [(tp, False) for tp in not_matching]
    odd = _odd_touchpoints(list(matching) + list(not_matching))
    answers = []
    for i, (tp, expected) in enumerate(samples):
        got = plugin.matches(copy.deepcopy(dict(tp)))
        answers.append(got)
        if not isinstance(got, bool):
            problems.append(f"matches() returned {type(got).__name__}, not bool, for example {i}")
        elif got != expected:
            problems.append(f"example {i} ({tp.get('event_type')}, {tp.get('attributes')}): matches() is {got}, expected {expected}")
        if plugin.matches(copy.deepcopy(dict(tp))) != got:
            problems.append(f"not deterministic on example {i}")
    for tp in odd:
        try:
            got = plugin.matches(tp)
        except Exception as exc:  # noqa: BLE001
            problems.append(f"matches() raises {type(exc).__name__} on odd attributes {tp['attributes']!r}: {exc} "
                            f"(a touchpoint it cannot judge must simply not match)")
            continue
        if not isinstance(got, bool):
            problems.append(f"matches() returned {type(got).__name__}, not bool, on odd attributes {tp['attributes']!r}")
    try:
        for label, again in _pickle_round_trips(plugin):
            if [again.matches(copy.deepcopy(dict(tp))) for tp, _ in samples] != answers:
                problems.append(f"gives other answers after a {label} round trip")
    except Exception as exc:  # noqa: BLE001
        problems.append(f"does not pickle: {type(exc).__name__}: {exc}")
    # inside a model: the classifier names the signal
    doc = load_model().document()
    doc["signals"] = {"contract_signal": {"weight": -1.0, "plugin": name, "params": dict(params)}, **doc["signals"]}
    try:
        classifier = Classifier(parse_model(doc, "<contract model>"))
    except Exception as exc:  # noqa: BLE001
        return problems + [f"a model using it does not load: {exc}"]
    for i, (tp, expected) in enumerate(samples):
        row = {"attributes": {}, **dict(tp)}
        got = classifier.signal(row["channel"], row["event_type"], row["attributes"], row) == "contract_signal"
        if got != expected:
            problems.append(f"in a model, example {i} is {'' if got else 'not '}classified as the signal")
    return problems


def assert_signal_contract(name: str, params: Mapping[str, Any], matching: Sequence[Mapping[str, Any]],
                           not_matching: Sequence[Mapping[str, Any]] = ()) -> None:
    problems = check_signal_plugin(name, params, matching, not_matching)
    if problems:
        raise ContractError(f"signal plug-in {name!r}", problems)


__all__ = ["SourceCases", "ContractError", "check_source", "assert_source_contract", "check_signal_plugin",
           "assert_signal_contract", "run_parse", "canonical_event_types"]
