"""Plug-in registration through entry points, with errors a person can act on.

Touchline has three entry point groups; a plug-in distribution declares them in its
``pyproject.toml`` (docs/extending.md has a worked example):

``touchline.schemas``   a package whose ``*.avsc`` files join the built-in schemas
``touchline.channels``  a :class:`~touchline.transforms.channels.ChannelSpec` subclass (a channel or source adapter)
``touchline.signals``   a :class:`~touchline.transforms.scoring.plugins.SignalPlugin` subclass

:func:`load_class` loads one entry point and checks what it loads, so that a broken registration
is one message naming the entry point, the problem and the fix -- never an import stack trace.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points


class PluginError(ValueError):
    """A plug-in is registered wrongly: which one, what is wrong, how to fix it."""

    def __init__(self, problem: str, fix: str):
        super().__init__(f"{problem}\n  fix: {fix}")
        self.problem = problem
        self.fix = fix


def describe(ep: EntryPoint) -> str:
    return f"entry point {ep.name!r} = {ep.value!r} (group {ep.group})"


def plugin_entry_points(group: str) -> list[EntryPoint]:
    """The group's entry points, each name once (an editable and a regular install of the same
    distribution may both be visible)."""
    seen: dict[str, EntryPoint] = {}
    for ep in entry_points(group=group):
        kept = seen.get(ep.name)
        if kept is not None and kept.value != ep.value:
            raise PluginError(f"{describe(ep)} and {describe(kept)} register the same name",
                              "uninstall one of the two distributions, or rename one entry point")
        seen[ep.name] = ep
    return list(seen.values())


def load_class(ep: EntryPoint, base: type, required: tuple[str, ...] = ("name",)) -> type:
    """Load the class an entry point names and check it derives from ``base`` and sets ``required``
    string attributes, the first of which must equal the entry point's name."""
    where = describe(ep)
    try:
        cls = ep.load()
    except Exception as exc:  # noqa: BLE001 -- any import failure of a plug-in is reported the same way
        raise PluginError(f"{where} cannot be loaded: {type(exc).__name__}: {exc}",
                          "install the distribution that provides it (pip install ...), or remove the entry point") from None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise PluginError(f"{where} loads {cls!r}, which is not a {base.__name__} subclass",
                          f"point the entry point at a class deriving from {base.__module__}.{base.__qualname__}")
    for attr in required:
        if not isinstance(getattr(cls, attr, None), str) or not getattr(cls, attr):
            raise PluginError(f"{where}: class {cls.__name__} sets no {attr}", f'add `{attr} = "..."` to the class')
    if getattr(cls, required[0]) != ep.name:
        raise PluginError(f"{where} loads a class whose {required[0]} is {getattr(cls, required[0])!r}",
                          "make the entry point's name and the class's name equal")
    return cls


__all__ = ["PluginError", "load_class", "plugin_entry_points", "describe"]
