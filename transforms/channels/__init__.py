"""Source registry: the built-in channels and source adapters, plus plug-ins from the
``touchline.channels`` entry point group.

Every entry is a :class:`ChannelSpec`: a *channel* reads records already in Touchline's raw format
(app, web, support, transactions), a *source adapter* maps an external format onto those channels
(segment, ga4, helpdesk, payments; see :mod:`touchline.transforms.channels.adapter`). Each has its
own input flags (``--<name>_input``), counters (``<name>.read``, ...) and dead letters.

A plug-in package declares, in its ``pyproject.toml``::

    [project.entry-points."touchline.channels"]
    chat = "my_package.chat:ChatChannel"

and ships the raw Avro schema the class names in ``schema_name`` under the ``touchline.schemas``
group (see docs/extending.md). Registration problems raise :class:`PluginError` naming the entry
point and the fix.
"""

from __future__ import annotations

import functools
from importlib.metadata import entry_points

from .adapter import SourceAdapter
from .app import AppChannel
from .base import ChannelSpec
from .ga4 import Ga4Adapter
from .helpdesk import HelpdeskAdapter
from .payments import PaymentsAdapter
from .segment import SegmentAdapter
from .support import SupportChannel
from .transactions import TransactionsChannel
from .web import WebChannel

BUILTIN: tuple[type[ChannelSpec], ...] = (
    AppChannel, WebChannel, SupportChannel, TransactionsChannel,
    SegmentAdapter, Ga4Adapter, HelpdeskAdapter, PaymentsAdapter,
)
GROUP = "touchline.channels"

__all__ = ["ChannelSpec", "SourceAdapter", "UnknownChannel", "PluginError", "get", "names", "registry", "BUILTIN",
           "canonical", "GROUP"]


class PluginError(ValueError):
    """A plug-in is registered wrongly: which one, what is wrong, how to fix it."""


class UnknownChannel(KeyError):
    def __init__(self, name: str):
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return f"unknown channel {self.name!r}; known channels: {', '.join(names())}"


def _load(ep) -> type[ChannelSpec]:
    where = f"entry point {ep.name!r} = {ep.value!r} (group {GROUP})"
    try:
        cls = ep.load()
    except Exception as exc:  # noqa: BLE001 -- any import failure of a plug-in is reported the same way
        raise PluginError(f"{where} cannot be loaded: {type(exc).__name__}: {exc}; "
                          f"fix: install the package that provides it, or remove the entry point") from None
    if not (isinstance(cls, type) and issubclass(cls, ChannelSpec)):
        raise PluginError(f"{where} is {cls!r}, not a ChannelSpec subclass; "
                          f"fix: point it at a class deriving from touchline.transforms.channels.ChannelSpec")
    for attr in ("name", "schema_name"):
        if not isinstance(getattr(cls, attr, None), str):
            raise PluginError(f"{where}: class {cls.__name__} sets no {attr}; fix: add `{attr} = \"...\"` to the class")
    if ep.name != cls.name:
        raise PluginError(f"{where} loads channel named {cls.name!r}; fix: make the entry point name and the class's name equal")
    from ... import schemas

    if cls.schema_name not in schemas.names():
        raise PluginError(f"{where}: channel {cls.name!r} names schema {cls.schema_name!r}, which is not installed; "
                          f"fix: ship {cls.schema_name}.avsc in a package registered under the touchline.schemas "
                          f"entry point group (see docs/extending.md)")
    return cls


@functools.cache
def registry() -> dict[str, ChannelSpec]:
    channels: dict[str, ChannelSpec] = {cls.name: cls() for cls in BUILTIN}
    for ep in entry_points(group=GROUP):
        if ep.name in channels:
            existing = type(channels[ep.name])
            if ep.value.replace(":", ".") == f"{existing.__module__}.{existing.__qualname__}":
                continue  # the same class registered twice (an editable and a regular install)
            raise PluginError(f"entry point {ep.name!r} = {ep.value!r} (group {GROUP}) reuses the name of the "
                              f"{'built-in ' if existing in BUILTIN else ''}channel {ep.name!r}; fix: give the plug-in another name")
        channels[ep.name] = _load(ep)()
    for spec in channels.values():
        for produced in spec.channels_produced():
            if produced != spec.name and (produced not in channels or channels[produced].kind != "channel"):
                raise PluginError(f"{spec.kind} {spec.name!r} produces touchpoints of {produced!r}, which is not a "
                                  f"channel; fix: set produces to channels among {', '.join(canonical_of(channels))}")
    return channels


def canonical_of(channels: dict[str, ChannelSpec]) -> list[str]:
    return [name for name, spec in channels.items() if spec.kind == "channel"]


def canonical() -> list[str]:
    """The channels touchpoints belong to (not the adapters that map onto them)."""
    return canonical_of(registry())


def names() -> list[str]:
    return list(registry())


def get(name: str) -> ChannelSpec:
    try:
        return registry()[name]
    except KeyError:
        raise UnknownChannel(name) from None
