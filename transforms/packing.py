"""Joins whose large inputs cross the shuffle as opaque bytes.

``beam.CoGroupByKey`` tags every input, flattens them and groups by key. On the local runner
(the FnApiRunner) a Flatten of inputs made in different stages is always materialized -- each
input is written to a buffer and read back -- so a join costs two full encode/decode passes of
every element (the flatten, then the GroupByKey), and for a touchpoint (a 19-field dict with a
nested list and map) a pass costs about as much as the work done on it.

:class:`PackedCoGroupByKey` is a drop-in for the joins of Touchline's large PCollections: the
values of the inputs named in ``packed`` are pickled once, where they are tagged (fused into the
stage that made them), cross the flatten and the shuffle as ``bytes`` (encoded and decoded by a
copy), and are unpickled once, where they are grouped (fused into the consumer). Output is the
same as ``CoGroupByKey`` on a dict: ``(key, {input name: [values]})``, every name present.
Keys must still be hashable, deterministic-coder values (the shuffle groups by them).

:func:`pack` writes a touchpoint (a dict with exactly the fields of ``schemas/touchpoint.avsc``,
in that order -- what parsing makes) as the tuple of its values, without the field names: a
third smaller and faster to unpack than the dict; so does an ``(tag, touchpoint)`` pair. Any other
value is pickled as it is. ``unpack(pack(x)) == x`` for every picklable ``x``.
"""

from __future__ import annotations

import pickle
from typing import Any

import apache_beam as beam

from .. import schemas
from .labels import camel

PROTOCOL = 5
#: the touchpoint's fields in schema order: the order parsing builds a touchpoint in
FIELDS: tuple[str, ...] = tuple(f["name"] for f in schemas.load("touchpoint")["fields"])
_PLAIN, _ROW, _TAGGED_ROW = b"\x00", b"\x01", b"\x02"


def pack(value: Any) -> bytes:
    """A value as bytes: touchpoints (and ``(tag, touchpoint)`` pairs) compactly, anything else pickled."""
    if value.__class__ is dict and tuple(value) == FIELDS:
        return _ROW + pickle.dumps(tuple(value.values()), PROTOCOL)
    if value.__class__ is tuple and len(value) == 2:
        row = value[1]
        if row.__class__ is dict and tuple(row) == FIELDS:
            return _TAGGED_ROW + pickle.dumps((value[0], tuple(row.values())), PROTOCOL)
    return _PLAIN + pickle.dumps(value, PROTOCOL)


def unpack(blob: bytes) -> Any:
    kind = blob[:1]
    value = pickle.loads(blob[1:])
    if kind == _ROW:
        return dict(zip(FIELDS, value))
    if kind == _TAGGED_ROW:
        return (value[0], dict(zip(FIELDS, value[1])))
    return value


class _Tag(beam.DoFn):
    def __init__(self, index: int, packed: bool):
        self._index = index
        self._packed = packed

    def process(self, element):
        key, value = element
        yield key, (self._index, pack(value) if self._packed else value)


class _Restore(beam.DoFn):
    def __init__(self, names: tuple[str, ...], packed: tuple[bool, ...]):
        self._names = names
        self._packed = packed

    def process(self, element):
        key, tagged = element
        groups: dict[str, list] = {name: [] for name in self._names}
        names, packed = self._names, self._packed
        for index, value in tagged:
            groups[names[index]].append(unpack(value) if packed[index] else value)
        yield key, groups


class PackedCoGroupByKey(beam.PTransform):
    """``{name: PCollection of (key, value)}`` -> ``(key, {name: [values]})``, the values of the
    inputs named in ``packed`` carried through the flatten and shuffle as pickled bytes."""

    def __init__(self, packed: tuple[str, ...] = ()):
        super().__init__()
        self._packed = frozenset(packed)

    def expand(self, inputs: dict[str, beam.PCollection]):
        names = tuple(inputs)
        unknown = self._packed - set(names)
        if unknown:
            raise ValueError(f"packed inputs {sorted(unknown)} are not among the join's inputs {list(names)}")
        packed = tuple(name in self._packed for name in names)
        tagged = [
            inputs[name] | f"Tag{camel(name)}" >> beam.ParDo(_Tag(i, packed[i]))
            for i, name in enumerate(names)
        ]
        return (
            tagged
            | "Flatten" >> beam.Flatten()
            | "GroupByKey" >> beam.GroupByKey()
            | "Restore" >> beam.ParDo(_Restore(names, packed))
        )


__all__ = ["PackedCoGroupByKey", "pack", "unpack"]
