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

from ..registry import PluginError, describe, load_class, plugin_entry_points

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


class UnknownChannel(KeyError):
    def __init__(self, name: str):
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return f"unknown channel {self.name!r}; known channels: {', '.join(names())}"


def _load(ep) -> type[ChannelSpec]:
    cls = load_class(ep, ChannelSpec, ("name", "schema_name"))
    from ... import schemas

    if cls.schema_name not in schemas.names():
        raise PluginError(f"{describe(ep)}: channel {cls.name!r} names schema {cls.schema_name!r}, which is not installed",
                          f"ship {cls.schema_name}.avsc in a package registered under the touchline.schemas entry "
                          f"point group (see docs/extending.md)")
    if cls.kind not in ("channel", "adapter"):
        raise PluginError(f"{describe(ep)}: kind {cls.kind!r} is neither channel nor adapter",
                          "derive adapters from touchline.transforms.channels.SourceAdapter")
    return cls


@functools.cache
def registry() -> dict[str, ChannelSpec]:
    channels: dict[str, ChannelSpec] = {cls.name: cls() for cls in BUILTIN}
    for ep in plugin_entry_points(GROUP):
        if ep.name in channels:
            raise PluginError(f"{describe(ep)} reuses the name of the built-in {channels[ep.name].kind} {ep.name!r}",
                              "give the plug-in another name")
        channels[ep.name] = _load(ep)()
    for spec in channels.values():
        for produced in spec.channels_produced():
            if produced != spec.name and (produced not in channels or channels[produced].kind != "channel"):
                raise PluginError(f"{spec.kind} {spec.name!r} produces touchpoints of {produced!r}, which is not a channel",
                                  f"set produces to channels among {', '.join(canonical_of(channels))}")
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
