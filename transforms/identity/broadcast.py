"""Small lists broadcast to every worker (side inputs) and looked up per element.

Beam hands a side input to ``process`` as a list (or dict) on every call; building a set from it
per element would cost O(n) each time. :class:`SetCache` keeps the set of the last list it saw
(:class:`LastCache` any other form built from it), so it is built once per worker and window. Only
small collections travel this way (quarantined identifiers, members of conflicting components, the
erasure list, the identifiers that moved this run): everything graph-sized is joined with a shuffle
instead.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable


class LastCache:
    """Per-DoFn cache: ``build(values)`` of the side-input object seen last (``empty`` before any)."""

    __slots__ = ("_build", "_source", "_value")

    def __init__(self, build: Callable[[Iterable], Any], empty: Any):
        self._build = build
        self._source = None
        self._value = empty

    def __call__(self, values: Iterable) -> Any:
        if values is not self._source:
            self._source = values
            self._value = self._build(values)
        return self._value


class SetCache(LastCache):
    """Per-DoFn cache: the frozenset of the side-input object seen last."""

    __slots__ = ()

    def __init__(self):
        super().__init__(frozenset, frozenset())
