"""The scoring model file: load, validate (with errors a person can act on), and write.

A model is a YAML or TOML file with a ``model_version``; the default ships as
``default_model.yaml`` next to this module (read it for the full, commented format). Users change
weights, caps, thresholds and even which events make a signal without touching code; every row the
scorer writes carries the ``model_version`` it was computed with.

``load_model(path)`` returns an immutable, picklable :class:`ScoringModel` or raises
:class:`ModelError` naming the file, the offending entry and how to fix it.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import os
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Iterable, Mapping

import yaml

#: The signal a survey answer becomes (its value is (observed - 50) / 50).
SURVEY_SIGNAL = "survey_answer"
#: Role name of the combined human-experience view.
ALL_ROLES = "all"
DEFAULT_MODEL_FILE = "default_model.yaml"

#: Friction flags Touchline knows how to detect, with the parameters each one takes (and their type).
FRICTION_PARAMS: dict[str, dict[str, type]] = {
    "channel_switch_after_failure": {"within_hours": float, "to_channels": list},
    "repeat_contact": {"within_days": float, "signals": list},
    "slow_first_response": {"after_hours": float},
    "slow_resolution": {"after_hours": float},
    "unresolved_at_end": {},
    "payment_decline": {"signals": list},
    "late_delivery": {"signals": list},
    "refund": {"signals": list},
    "many_channels": {"min_channels": int},
}
OUTCOMES = ("converted", "resolved", "abandoned", "failed")
TICKET_STEPS = ("opened", "response", "resolved", "closed_unresolved", "reopened")
TOP_LEVEL = ("model_version", "description", "half_life_days", "curve", "top_drivers", "signals", "surveys",
             "friction", "tickets", "outcomes", "combined", "calibration")


class ModelError(Exception):
    """The model file is missing or invalid: which file, what is wrong, how to fix it."""

    def __init__(self, path: str, problem: str, fix: str = ""):
        super().__init__(f"scoring model {path}: {problem}")
        self.path = path
        self.problem = problem
        self.fix = fix


@dataclass(frozen=True)
class Matcher:
    """One ``match`` entry: every given condition must hold (an empty entry matches anything)."""

    channels: frozenset[str] | None = None
    event_types: frozenset[str] | None = None
    attributes: tuple[tuple[str, frozenset[str]], ...] = ()

    def matches(self, channel: str, event_type: str, attributes: Mapping[str, str]) -> bool:
        if self.channels is not None and channel not in self.channels:
            return False
        if self.event_types is not None and event_type not in self.event_types:
            return False
        for key, values in self.attributes:
            if attributes.get(key) not in values:
                return False
        return True


@dataclass(frozen=True)
class SignalSpec:
    name: str
    weight: float
    daily_cap: int
    failure: bool
    matchers: tuple[Matcher, ...]
    #: a signal plug-in (touchline.transforms.scoring.plugins) deciding among the matched touchpoints
    plugin: str | None = None
    params: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class FrictionSpec:
    name: str
    weight: float
    daily_cap: int
    params: tuple[tuple[str, Any], ...] = ()

    def param(self, key: str) -> Any:
        return dict(self.params)[key]


@dataclass(frozen=True, repr=False)
class ScoringModel:
    """A validated scoring model (immutable and picklable: it travels to Beam workers)."""

    model_version: str
    half_life_days: float
    curve_midpoint: float
    curve_scale: float
    top_drivers: int
    signals: tuple[SignalSpec, ...]
    survey_validity_days: float
    survey_weight: float
    survey_daily_cap: int
    friction: tuple[FrictionSpec, ...]
    tickets: tuple[tuple[str, frozenset[str]], ...]
    ticket_memory_days: float
    outcomes: tuple[tuple[str, frozenset[str]], ...]
    failed_if_last: frozenset[str]
    combined_max_gap: float
    combined_min_weight: float
    description: str = ""
    calibration: tuple[tuple[str, Any], ...] = ()
    source: str = ""
    fingerprint: str = ""
    _document: str = field(default="", repr=False)

    def __repr__(self) -> str:
        return f"ScoringModel({self.model_version!r}, source={self.source!r})"

    # -- lookups ------------------------------------------------------------------------------
    @property
    def half_life_micros(self) -> float:
        return self.half_life_days * 86_400_000_000

    def weights(self) -> dict[str, float]:
        """Weight of every signal, friction flag and ``survey_answer``, by name."""
        out = {s.name: s.weight for s in self.signals}
        out.update({f.name: f.weight for f in self.friction})
        out[SURVEY_SIGNAL] = self.survey_weight
        return out

    def daily_caps(self) -> dict[str, int]:
        out = {s.name: s.daily_cap for s in self.signals}
        out.update({f.name: f.daily_cap for f in self.friction})
        out[SURVEY_SIGNAL] = self.survey_daily_cap
        return out

    def flag(self, name: str) -> FrictionSpec | None:
        for spec in self.friction:
            if spec.name == name:
                return spec
        return None

    def ticket_signals(self, step: str) -> frozenset[str]:
        return dict(self.tickets)[step]

    @property
    def failure_signals(self) -> frozenset[str]:
        return frozenset(s.name for s in self.signals if s.failure)

    @property
    def context_days(self) -> int:
        """How far back (whole days) any rule looks from a touchpoint: repeat contacts and tickets."""
        back = self.ticket_memory_days
        repeat = self.flag("repeat_contact")
        if repeat is not None:
            back = max(back, float(repeat.param("within_days")))
        return int(math.ceil(back)) + 1

    def curve(self, raw: float) -> float:
        """Raw score -> 0-100 (logistic, saturating at both ends)."""
        z = (raw - self.curve_midpoint) / self.curve_scale
        if z >= 0:
            return 100.0 / (1.0 + math.exp(-z))
        e = math.exp(z)
        return 100.0 * e / (1.0 + e)

    # -- writing ------------------------------------------------------------------------------
    def document(self) -> dict[str, Any]:
        """The model as a plain dict in the file format (a fresh copy)."""
        return json.loads(self._document)

    def with_changes(self, *, model_version: str, weights: Mapping[str, float], midpoint: float, scale: float,
                     calibration: Mapping[str, Any] | None = None, description: str | None = None) -> "ScoringModel":
        """A new model: same rules, new weights/curve/version (validated like a file)."""
        doc = self.document()
        doc["model_version"] = model_version
        if description is not None:
            doc["description"] = description
        doc["curve"] = {"midpoint": float(midpoint), "scale": float(scale)}
        for name, weight in weights.items():
            if name == SURVEY_SIGNAL:
                doc["surveys"]["weight"] = float(weight)
            elif name in doc["signals"]:
                doc["signals"][name]["weight"] = float(weight)
            elif name in doc.get("friction", {}):
                doc["friction"][name]["weight"] = float(weight)
            else:
                raise KeyError(f"no signal or friction flag named {name!r} in model {self.model_version}")
        if calibration is not None:
            doc["calibration"] = dict(calibration)
        return parse_model(doc, self.source or "<generated>")

    def dump(self) -> str:
        """YAML text of the model (what ``touchline calibrate`` writes)."""
        return yaml.safe_dump(self.document(), sort_keys=False, default_flow_style=None, width=140)


# ------------------------------------------------------------------------------------------------
def default_model_path() -> str:
    return str(resources.files(__package__) / DEFAULT_MODEL_FILE)


def load_model(path: str | None = None) -> ScoringModel:
    """Load and validate a model file (YAML, or TOML by extension); None = the shipped default."""
    path = path or default_model_path()
    if not os.path.exists(path):
        raise ModelError(path, "file not found", "check the path given to --scoring_model (omit it to use the default model)")
    if os.path.isdir(path):
        raise ModelError(path, "is a folder, not a model file", "point --scoring_model at a .yaml or .toml file")
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise ModelError(path, f"cannot be read ({exc.strerror})", "check the file's permissions") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ModelError(path, "is not UTF-8 text", "save the model file as UTF-8 YAML or TOML") from None
    if path.endswith(".toml"):
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ModelError(path, f"is not valid TOML ({exc})", "fix the syntax at the position shown") from None
    else:
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            where = ""
            mark = getattr(exc, "problem_mark", None)
            if mark is not None:
                where = f" at line {mark.line + 1}, column {mark.column + 1}"
            problem = getattr(exc, "problem", None) or str(exc)
            raise ModelError(path, f"is not valid YAML{where}: {problem}", "fix the syntax there (indentation, colons, brackets)") from None
    return parse_model(doc, path)


def _fail(path: str, where: str, problem: str, fix: str = "") -> ModelError:
    return ModelError(path, f"{where}: {problem}" if where else problem, fix)


def _suggest(name: str, known: Iterable[str]) -> str:
    hint = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {hint[0]!r}?)" if hint else ""


def _mapping(path: str, where: str, value: Any) -> dict:
    if not isinstance(value, dict):
        raise _fail(path, where, f"must be a mapping (key: value entries), got {type(value).__name__}")
    return value


def _keys(path: str, where: str, value: dict, allowed: Iterable[str]) -> None:
    allowed = list(allowed)
    for key in value:
        if key not in allowed:
            raise _fail(path, f"{where}.{key}" if where else str(key), "unknown setting" + _suggest(str(key), allowed),
                        f"use one of: {', '.join(allowed)}")


def _number(path: str, where: str, value: Any, *, positive: bool = False, minimum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(path, where, f"must be a number, got {value!r}")
    if positive and value <= 0:
        raise _fail(path, where, f"must be greater than 0, got {value!r}")
    if minimum is not None and value < minimum:
        raise _fail(path, where, f"must be at least {minimum}, got {value!r}")
    return float(value)


def _integer(path: str, where: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _fail(path, where, f"must be a whole number >= {minimum}, got {value!r}")
    return value


def _strings(path: str, where: str, value: Any, *, allow_empty: bool = False) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value) or (not value and not allow_empty):
        raise _fail(path, where, f"must be a list of names, got {value!r}")
    return list(value)


def _matcher(path: str, where: str, entry: Any) -> Matcher:
    entry = _mapping(path, where, entry if entry is not None else {})
    _keys(path, where, entry, ("channel", "event_type", "attributes"))
    channels = frozenset(_strings(path, f"{where}.channel", entry["channel"])) if "channel" in entry else None
    types = frozenset(_strings(path, f"{where}.event_type", entry["event_type"])) if "event_type" in entry else None
    attrs = []
    for key, values in sorted(_mapping(path, f"{where}.attributes", entry.get("attributes", {})).items()):
        if isinstance(values, bool):
            values = "true" if values else "false"
        if isinstance(values, (int, float)):
            values = str(values)
        attrs.append((str(key), frozenset(_strings(path, f"{where}.attributes.{key}", values))))
    return Matcher(channels, types, tuple(attrs))


def _plugin(path: str, where: str, spec: dict) -> tuple[str | None, tuple[tuple[str, Any], ...]]:
    """(plug-in name, validated params) of a signal entry, or (None, ()) for a plain signal."""
    from . import plugins

    if "plugin" not in spec:
        if "params" in spec:
            raise _fail(path, f"{where}.params", "is only for plug-in signals", "add `plugin: NAME` or remove `params`")
        return None, ()
    name = spec["plugin"]
    if not isinstance(name, str) or not name:
        raise _fail(path, f"{where}.plugin", f"must be the name of a signal plug-in, got {name!r}")
    try:
        cls = plugins.get(name)
    except KeyError:
        known = plugins.registry()
        raise _fail(path, f"{where}.plugin", f"no signal plug-in named {name!r} is installed" + _suggest(name, known),
                    f"install the distribution that registers it under the {plugins.GROUP} entry point group, "
                    f"or use one of: {', '.join(sorted(known))}") from None
    given = _mapping(path, f"{where}.params", spec.get("params") or {})
    try:
        checked = cls.check_params(given)
    except ValueError as exc:
        takes = ", ".join(f"{k} ({t.__name__})" for k, (t, _) in cls.params.items()) or "no parameters"
        raise _fail(path, f"{where}.params", str(exc), f"plug-in {name} takes {takes}") from None
    return name, tuple(sorted(checked.items()))


def _signal_refs(path: str, where: str, value: Any, known: set[str]) -> frozenset[str]:
    names = _strings(path, where, value, allow_empty=True)
    for name in names:
        if name not in known:
            raise _fail(path, where, f"names unknown signal {name!r}" + _suggest(name, known),
                        "list signals defined under `signals:`")
    return frozenset(names)


def parse_model(doc: Any, path: str = "<model>") -> ScoringModel:
    """Validate a model document (the parsed file) into a :class:`ScoringModel`."""
    if doc is None:
        raise _fail(path, "", "is empty", f"start from the default model ({default_model_path()})")
    doc = _mapping(path, "", doc)
    _keys(path, "", doc, TOP_LEVEL)
    version = doc.get("model_version")
    if not isinstance(version, (str, int, float)) or isinstance(version, bool) or not str(version).strip():
        raise _fail(path, "model_version", "is missing or empty",
                    "add a line like `model_version: my-model-1` (every score row records it)")
    version = str(version).strip()
    half_life = _number(path, "half_life_days", doc.get("half_life_days", 7), positive=True)
    curve = _mapping(path, "curve", doc.get("curve", {}))
    _keys(path, "curve", curve, ("midpoint", "scale"))
    midpoint = _number(path, "curve.midpoint", curve.get("midpoint", 0.0))
    scale = _number(path, "curve.scale", curve.get("scale", 1.0), positive=True)
    top = _integer(path, "top_drivers", doc.get("top_drivers", 3))

    raw_signals = _mapping(path, "signals", doc.get("signals"))
    if not raw_signals:
        raise _fail(path, "signals", "defines no signal", "define at least one signal with a weight and a match")
    signals = []
    for name, spec in raw_signals.items():
        where = f"signals.{name}"
        spec = _mapping(path, where, spec)
        _keys(path, where, spec, ("weight", "daily_cap", "failure", "match", "doc", "plugin", "params"))
        if "weight" not in spec:
            raise _fail(path, where, "has no weight", "add e.g. `weight: -1.0` (negative = bad experience)")
        plugin, params = _plugin(path, where, spec)
        if "match" not in spec and plugin is None:
            raise _fail(path, where, "has no match", "add e.g. `match: [{event_type: app_crash}]` ([{}] matches anything)")
        matchers = spec.get("match", [{}])
        if not isinstance(matchers, list) or not matchers:
            raise _fail(path, f"{where}.match", f"must be a non-empty list of conditions, got {matchers!r}")
        failure = spec.get("failure", False)
        if not isinstance(failure, bool):
            raise _fail(path, f"{where}.failure", f"must be true or false, got {failure!r}")
        signals.append(SignalSpec(
            name=str(name),
            weight=_number(path, f"{where}.weight", spec["weight"]),
            daily_cap=_integer(path, f"{where}.daily_cap", spec.get("daily_cap", 10)),
            failure=failure,
            matchers=tuple(_matcher(path, f"{where}.match[{i}]", m) for i, m in enumerate(matchers)),
            plugin=plugin,
            params=params,
        ))
    known = {s.name for s in signals}
    if SURVEY_SIGNAL in known:
        raise _fail(path, f"signals.{SURVEY_SIGNAL}", "is reserved for survey answers", "configure it under `surveys:`")

    surveys = _mapping(path, "surveys", doc.get("surveys", {}))
    _keys(path, "surveys", surveys, ("validity_days", "weight", "daily_cap"))
    validity = _number(path, "surveys.validity_days", surveys.get("validity_days", 14), minimum=0)
    survey_weight = _number(path, "surveys.weight", surveys.get("weight", 0.0))
    survey_cap = _integer(path, "surveys.daily_cap", surveys.get("daily_cap", 2))

    friction = []
    for name, spec in _mapping(path, "friction", doc.get("friction", {}) or {}).items():
        where = f"friction.{name}"
        if name not in FRICTION_PARAMS:
            raise _fail(path, where, "is not a friction flag Touchline detects" + _suggest(str(name), FRICTION_PARAMS),
                        f"use one of: {', '.join(FRICTION_PARAMS)}")
        if name in known:
            raise _fail(path, where, f"has the same name as signal {name!r}", "rename the signal")
        spec = _mapping(path, where, spec)
        wanted = FRICTION_PARAMS[name]
        _keys(path, where, spec, ("weight", "daily_cap", "doc", *wanted))
        if "weight" not in spec:
            raise _fail(path, where, "has no weight", "add e.g. `weight: -2.0`")
        params = []
        for key, kind in wanted.items():
            if key not in spec:
                raise _fail(path, f"{where}.{key}", "is missing", f"flag {name} needs {', '.join(wanted)}")
            value = spec[key]
            if kind is float:
                value = _number(path, f"{where}.{key}", value, positive=True)
            elif kind is int:
                value = _integer(path, f"{where}.{key}", value)
            elif key == "signals":
                value = tuple(sorted(_signal_refs(path, f"{where}.{key}", value, known)))
            else:
                value = tuple(sorted(_strings(path, f"{where}.{key}", value)))
            params.append((key, value))
        friction.append(FrictionSpec(str(name), _number(path, f"{where}.weight", spec["weight"]),
                                     _integer(path, f"{where}.daily_cap", spec.get("daily_cap", 2)), tuple(params)))

    tickets_doc = _mapping(path, "tickets", doc.get("tickets", {}) or {})
    _keys(path, "tickets", tickets_doc, (*TICKET_STEPS, "memory_days"))
    tickets = tuple((step, _signal_refs(path, f"tickets.{step}", tickets_doc.get(step, []), known)) for step in TICKET_STEPS)
    memory = _number(path, "tickets.memory_days", tickets_doc.get("memory_days", 7), positive=True)

    outcomes_doc = _mapping(path, "outcomes", doc.get("outcomes", {}) or {})
    _keys(path, "outcomes", outcomes_doc, (*OUTCOMES, "failed_if_last"))
    outcomes = tuple((o, _signal_refs(path, f"outcomes.{o}", outcomes_doc.get(o, []), known)) for o in OUTCOMES)
    seen: dict[str, str] = {}
    for outcome, names in outcomes:
        for name in names:
            if name in seen:
                raise _fail(path, f"outcomes.{outcome}", f"signal {name!r} is also listed under {seen[name]}",
                            "list each signal under one outcome")
            seen[name] = outcome
    failed_if_last = _signal_refs(path, "outcomes.failed_if_last", outcomes_doc.get("failed_if_last", []), known)

    combined = _mapping(path, "combined", doc.get("combined", {}) or {})
    _keys(path, "combined", combined, ("max_gap", "min_weight"))
    max_gap = _number(path, "combined.max_gap", combined.get("max_gap", 20), minimum=0)
    min_weight = _number(path, "combined.min_weight", combined.get("min_weight", 0.5), minimum=0)

    calibration = doc.get("calibration") or {}
    _mapping(path, "calibration", calibration)
    description = doc.get("description") or ""
    if not isinstance(description, str):
        raise _fail(path, "description", f"must be text, got {description!r}")

    canonical = json.dumps(doc, sort_keys=True, default=str)
    return ScoringModel(
        model_version=version,
        half_life_days=half_life,
        curve_midpoint=midpoint,
        curve_scale=scale,
        top_drivers=top,
        signals=tuple(signals),
        survey_validity_days=validity,
        survey_weight=survey_weight,
        survey_daily_cap=survey_cap,
        friction=tuple(friction),
        tickets=tickets,
        ticket_memory_days=memory,
        outcomes=outcomes,
        failed_if_last=failed_if_last,
        combined_max_gap=max_gap,
        combined_min_weight=min_weight,
        description=description,
        calibration=tuple(sorted((str(k), json.dumps(v, sort_keys=True, default=str)) for k, v in calibration.items())),
        source=path,
        fingerprint=hashlib.sha256(canonical.encode()).hexdigest()[:16],
        _document=json.dumps(doc, default=str),
    )


__all__ = [
    "ModelError", "ScoringModel", "SignalSpec", "FrictionSpec", "Matcher", "load_model", "parse_model",
    "default_model_path", "SURVEY_SIGNAL", "ALL_ROLES", "FRICTION_PARAMS", "OUTCOMES",
]
