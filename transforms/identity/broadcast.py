"""Small lists broadcast to every worker (side inputs) and looked up per element.

Beam hands a side input to ``process`` as a list (or dict) on every call; building a set from it
per element would cost O(n) each time. :func:`as_set` keeps the set of the last list it saw, so
the set is built once per worker and window. Only small collections travel this way (quarantined
identifiers, members of conflicting components, the erasure list): everything graph-sized is
joined with a shuffle instead.
"""

from __future__ import annotations

from typing import Iterable


class SetCache:
    """Per-DoFn cache: the frozenset of the side-input object seen last."""

    __slots__ = ("_source", "_set")

    def __init__(self):
        self._source = None
        self._set: frozenset = frozenset()

    def __call__(self, values: Iterable) -> frozenset:
        if values is not self._source:
            self._source = values
            self._set = frozenset(values)
        return self._set
