"""Honour the erasure list (``erasure_requests``): erased persons do not come back on a replay.

``touchline erase`` deletes a person's rows from every table that declares ``erase_by`` and
adds their identifier hashes to the erasure list. Every later run then, before stitching:

* drops a touchpoint whose strongest identifier is erased -- it was that person's event --
  counting it in ``touchline/<channel>.erased`` (per channel: read = touchpoints + duplicates +
  dead letters + erased);
* removes erased identifiers from every other touchpoint (someone else logging in on a device the
  erased person once used keeps their event, without the device), so no erased identifier enters
  the identity graph again;
* drops dead letters whose payload carries an ``<email:HASH>`` / ``<phone:HASH>`` token of an
  erased identifier, counting them in ``touchline/<channel>.erased_dead_letters`` (their reason
  was already counted in ``<channel>.dead_letter.<reason>``, so the summary subtracts them).

:func:`strip_erased` is the rule, shared by the batch steps here and the streaming attribution.
The list is broadcast to workers as a side input: it holds one short hash per erased identifier.
"""

from __future__ import annotations

import re

import apache_beam as beam
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.metrics import Metrics

from ..packing import Shuffle, restore, unpack
from ..parse import NAMESPACE
from .broadcast import SetCache
from .graph import strongest

TOKEN = re.compile(r"<[a-z_]+:([0-9a-f]{32})>")
#: history rows whose strongest identifier is erased: kept as stored, left out of attribution
ERASED = "_erased"


def strip_erased(identifiers: list[dict], erased: frozenset) -> list[dict] | None:
    """A touchpoint's identifiers without the erased ones (the same list when none is), or None
    when the touchpoint itself is erased: its strongest identifier is on the list."""
    best = strongest(identifiers)
    if best is not None and best["id_hash"] in erased:
        return None
    if not any(i["id_hash"] in erased for i in identifiers):
        return identifiers
    return [i for i in identifiers if i["id_hash"] not in erased]


def is_erased(touchpoint: dict, erased: frozenset) -> bool:
    return strip_erased(touchpoint["identifiers"], erased) is None


class StripErased(beam.DoFn):
    """(bucket, touchpoint table) -> the same without erased persons' data (see the module doc).

    ``history=True`` (stored touchpoints): an erased one is not dropped but flagged in column
    ``_erased`` (it takes no part in attribution; it stays what was stored), and nothing is counted.
    Batches are packed (:mod:`touchline.transforms.packing`) on both sides."""

    def __init__(self, shuffle: Shuffle, history: bool = False):
        self._shuffle = shuffle
        self._history = history

    def setup(self):
        self._erased = SetCache()
        self._counters = {}

    def process(self, element, erased_list):
        key, blob = element
        erased = self._erased(erased_list)
        if not erased:
            yield key, blob
            return
        table, flags = self._strip(unpack(blob), erased)
        if self._history:
            table = table.append_column(ERASED, pa.array(flags, pa.bool_()))
        yield key, self._shuffle.pack(table)

    def _strip(self, table: pa.Table, erased: frozenset):
        identifiers = table.column("identifiers").to_pylist()
        stripped, keep, flags, changed = [], [], [], False
        for i, idents in enumerate(identifiers):
            kept = strip_erased(idents or [], erased)
            if kept is None:
                if self._history:  # stays as stored, flagged
                    keep.append(i)
                    stripped.append(idents)
                    flags.append(True)
                else:
                    self._count(table.column("channel")[i].as_py())
                continue
            keep.append(i)
            stripped.append(kept)
            flags.append(False)
            changed = changed or kept is not idents
        if len(keep) != table.num_rows:
            table = table.take(pa.array(keep, pa.int64()))
        if changed:
            column = table.schema.get_field_index("identifiers")
            table = table.set_column(column, table.schema.field(column), pa.array(stripped, table.schema.field(column).type))
        return table, flags

    def _count(self, channel: str) -> None:
        if channel not in self._counters:
            self._counters[channel] = Metrics.counter(NAMESPACE, f"{channel}.erased")
        self._counters[channel].inc()


class DropErasedDeadLetters(beam.DoFn):
    """(file key, dead letters: a list or packed bytes of one) -> the same without those that carry
    an erased identifier's token (packed again when any was dropped)."""

    def __init__(self, shuffle: Shuffle | None = None):
        self._shuffle = shuffle or Shuffle()

    def setup(self):
        self._erased = SetCache()
        self._counters = {}

    def process(self, element, erased_list):
        key, batch = element
        erased = self._erased(erased_list)
        if not erased:
            yield element
            return
        rows = restore(batch)
        kept = [row for row in rows if not self._erased_row(row, erased)]
        if len(kept) == len(rows):
            yield element
        elif kept:
            yield key, self._shuffle.pack(kept)

    def _erased_row(self, row: dict, erased: frozenset) -> bool:
        if any(h in erased for h in TOKEN.findall(row["raw_payload"] or "")):
            channel = row["channel"]
            if channel not in self._counters:
                self._counters[channel] = Metrics.counter(NAMESPACE, f"{channel}.erased_dead_letters")
            self._counters[channel].inc()
            return True
        return False


def erased_hashes(table: pa.Table) -> list[str]:
    """The id hashes of an ``erasure_requests`` table (the side input of the steps above)."""
    return pc.unique(table.column("id_hash")).to_pylist()


__all__ = ["strip_erased", "is_erased", "StripErased", "DropErasedDeadLetters", "erased_hashes", "TOKEN", "ERASED"]
