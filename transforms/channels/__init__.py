"""Channel registry: the built-in channels plus plug-ins from the ``touchline.channels`` entry point group.

A plug-in package declares, in its ``pyproject.toml``::

    [project.entry-points."touchline.channels"]
    chat = "my_package.chat:ChatChannel"

and ships the raw Avro schema the class names in ``schema_name`` (see docs/extending.md).
"""

from __future__ import annotations

import functools
from importlib.metadata import entry_points

from .app import AppChannel
from .base import ChannelSpec
from .support import SupportChannel
from .transactions import TransactionsChannel
from .web import WebChannel

BUILTIN: tuple[type[ChannelSpec], ...] = (AppChannel, WebChannel, SupportChannel, TransactionsChannel)

__all__ = ["ChannelSpec", "UnknownChannel", "get", "names", "registry", "BUILTIN"]


class UnknownChannel(KeyError):
    def __init__(self, name: str):
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return f"unknown channel {self.name!r}; known channels: {', '.join(names())}"


@functools.cache
def registry() -> dict[str, ChannelSpec]:
    channels: dict[str, ChannelSpec] = {cls.name: cls() for cls in BUILTIN}
    for ep in entry_points(group="touchline.channels"):
        cls = ep.load()
        if ep.name != cls.name:
            raise ValueError(f"entry point {ep.name!r} loads channel named {cls.name!r}; make them equal")
        channels.setdefault(cls.name, cls())
    return channels


def names() -> list[str]:
    return list(registry())


def get(name: str) -> ChannelSpec:
    try:
        return registry()[name]
    except KeyError:
        raise UnknownChannel(name) from None
