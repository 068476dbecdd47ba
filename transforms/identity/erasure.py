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

The list is broadcast to workers as a side input: it holds one short hash per erased identifier.
"""

from __future__ import annotations

import re

import apache_beam as beam
from apache_beam.metrics import Metrics

from ..parse import NAMESPACE
from .broadcast import SetCache
from .graph import strongest

TOKEN = re.compile(r"<[a-z_]+:([0-9a-f]{32})>")


def is_erased(touchpoint: dict, erased: frozenset) -> bool:
    best = strongest(touchpoint["identifiers"])
    return best is not None and best["id_hash"] in erased


class _StripErased(beam.DoFn):
    def __init__(self, count: bool):
        self._count = count

    def setup(self):
        self._erased = SetCache()
        self._counters = {}

    def process(self, touchpoint, erased_list):
        erased = self._erased(erased_list)
        if not erased:
            yield touchpoint
            return
        if is_erased(touchpoint, erased):
            if self._count:
                channel = touchpoint["channel"]
                if channel not in self._counters:
                    self._counters[channel] = Metrics.counter(NAMESPACE, f"{channel}.erased")
                self._counters[channel].inc()
            return
        kept = [i for i in touchpoint["identifiers"] if i["id_hash"] not in erased]
        yield touchpoint if len(kept) == len(touchpoint["identifiers"]) else {**touchpoint, "identifiers": kept}


class _DropErasedDeadLetters(beam.DoFn):
    def setup(self):
        self._erased = SetCache()
        self._counters = {}

    def process(self, row, erased_list):
        erased = self._erased(erased_list)
        if erased and any(h in erased for h in TOKEN.findall(row["raw_payload"] or "")):
            channel = row["channel"]
            if channel not in self._counters:
                self._counters[channel] = Metrics.counter(NAMESPACE, f"{channel}.erased_dead_letters")
            self._counters[channel].inc()
            return
        yield row


class ApplyErasure(beam.PTransform):
    """{touchpoints, [history], dead_letters, erasure_requests} -> the same minus erased persons' data."""

    def expand(self, inputs):
        erased = beam.pvalue.AsList(inputs["erasure_requests"] | "ErasedHashes" >> beam.Map(lambda row: row["id_hash"]))
        out = {
            "touchpoints": inputs["touchpoints"] | "StripTouchpoints" >> beam.ParDo(_StripErased(count=True), erased),
            "dead_letters": inputs["dead_letters"] | "DropDeadLetters" >> beam.ParDo(_DropErasedDeadLetters(), erased),
        }
        if "history" in inputs:
            out["history"] = inputs["history"] | "StripHistory" >> beam.ParDo(_StripErased(count=False), erased)
        return out
