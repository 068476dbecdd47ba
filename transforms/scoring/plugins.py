"""Signals that need code: a small class, registered by name, referenced from the model file.

Most signals are a YAML entry matched by channel, event_type and attribute values. A signal whose
rule needs code -- a threshold from the model file, arithmetic over attributes, a parsed value --
is a :class:`SignalPlugin` subclass::

    class LongHoldTime(SignalPlugin):
        name = "long_hold_time"
        params = {"threshold_seconds": (float, 300.0)}

        def matches(self, touchpoint):
            return number(touchpoint["attributes"].get("hold_seconds")) > self.param("threshold_seconds")

registered under the ``touchline.signals`` entry point group (or in :data:`BUILTIN`) and used in the
model file like any signal, with ``plugin`` and ``params``::

    signals:
      long_hold:  {weight: -1.0, daily_cap: 2, failure: true, plugin: long_hold_time,
                   params: {threshold_seconds: 600}, match: [{channel: [support, chat]}]}

``match`` (optional for plug-in signals) pre-filters cheaply; the plug-in decides for the
touchpoints that pass. Signals are still tried in file order, first fit wins, so journeys, friction
flags, daily caps, scores and calibration treat a plug-in signal exactly like any other. Instances
are built on the workers (in ``DoFn.setup`` through the scorer's classifier) from the model's
parameters; a plug-in must be deterministic and must not raise on odd touchpoints (a missing or
non-numeric attribute simply does not match).
"""

from __future__ import annotations

import functools
import math
from typing import Any, ClassVar, Mapping

from ..registry import PluginError, load_class, plugin_entry_points

GROUP = "touchline.signals"
REQUIRED = object()


def number(value: Any) -> float:
    """An attribute value as a number; NaN when it is missing or not numeric (NaN compares false)."""
    if value is None or isinstance(value, bool):
        return math.nan
    try:
        result = float(value)
    except (TypeError, ValueError):
        return math.nan
    return result if math.isfinite(result) else math.nan


class SignalPlugin:
    """Base class of signal plug-ins. Subclass: set ``name`` and ``params``, implement ``matches``."""

    #: the name the model file's ``plugin:`` refers to
    name: ClassVar[str]
    #: parameter -> (type, default); default REQUIRED means the model entry must set it
    params: ClassVar[Mapping[str, tuple[type, Any]]] = {}
    #: one line for docs and error messages
    doc: ClassVar[str] = ""

    def __init__(self, **params: Any):
        self._params = self.check_params(params)

    @classmethod
    def check_params(cls, given: Mapping[str, Any]) -> dict[str, Any]:
        """Validated parameters (defaults filled); ValueError names the parameter and the problem."""
        unknown = sorted(set(given) - set(cls.params))
        if unknown:
            raise ValueError(f"unknown parameter {unknown[0]!r}; {cls.name} takes: {', '.join(cls.params) or 'none'}")
        out = {}
        for key, (kind, default) in cls.params.items():
            if given.get(key) is None:
                if default is REQUIRED:
                    raise ValueError(f"parameter {key!r} is required ({kind.__name__})")
                out[key] = default
                continue
            value = given[key]
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if kind is list and isinstance(value, str):
                value = [value]
            if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
                raise ValueError(f"parameter {key!r} must be {kind.__name__}, got {value!r}")
            out[key] = tuple(value) if kind is list else value
        return out

    def param(self, key: str) -> Any:
        return self._params[key]

    def matches(self, touchpoint: Mapping[str, Any]) -> bool:
        """Whether this touchpoint (a ``touchpoints`` row: channel, event_type, attributes, ...) is the signal."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._params!r})"


class AttributeThreshold(SignalPlugin):
    """A numeric attribute above (or below) a threshold: e.g. GA4 ``engagement_time_msec`` below 1000."""

    name = "attribute_threshold"
    doc = "a numeric attribute above `above` and/or below `below`"
    params = {"attribute": (str, REQUIRED), "above": (float, None), "below": (float, None)}

    @classmethod
    def check_params(cls, given):
        out = super().check_params(given)
        if out["above"] is None and out["below"] is None:
            raise ValueError("set `above` or `below` (or both)")
        return out

    def matches(self, touchpoint):
        value = number((touchpoint.get("attributes") or {}).get(self.param("attribute")))
        if math.isnan(value):
            return False
        above, below = self.param("above"), self.param("below")
        return (above is None or value > above) and (below is None or value < below)


BUILTIN: tuple[type[SignalPlugin], ...] = (AttributeThreshold,)


@functools.cache
def registry() -> dict[str, type[SignalPlugin]]:
    """Signal plug-ins by name: built-ins plus the ``touchline.signals`` entry point group."""
    found: dict[str, type[SignalPlugin]] = {cls.name: cls for cls in BUILTIN}
    for ep in plugin_entry_points(GROUP):
        if ep.name in found:
            raise PluginError(f"entry point {ep.name!r} = {ep.value!r} (group {GROUP}) reuses the name of a built-in signal plug-in",
                              "give the plug-in another name")
        found[ep.name] = load_class(ep, SignalPlugin)
    return found


def get(name: str) -> type[SignalPlugin]:
    """The plug-in class, or KeyError with the known names."""
    plugins = registry()
    if name not in plugins:
        raise KeyError(name)
    return plugins[name]


def build(name: str, params: Mapping[str, Any]) -> SignalPlugin:
    return get(name)(**dict(params))


__all__ = ["SignalPlugin", "AttributeThreshold", "BUILTIN", "GROUP", "REQUIRED", "registry", "get", "build", "number"]
