"""Put a person_id on every touchpoint, and re-attribute earlier ones whose person changed.

A touchpoint belongs to the person of its strongest identifier that is not quarantined (lowest
priority, then smallest hash: a customer_id before an e-mail before a device before a cookie).
Its ``role`` stays the one it was made in (set by the channel when parsed), so a person who is a
customer and an employee has touchpoints in both roles.

**Unattributable touchpoints** -- every identifier quarantined or blocklisted, or none at all (an
anonymous app_open on a kiosk or on a device with tracking off) -- keep ``person_id`` null and are
counted in ``touchline/<channel>.unattributed``; they stay in the touchpoints table (nothing is
dropped) and are re-attributed by a later run if one of their identifiers is released.

**Late links.** The stored touchpoints of the last ``lookback_days`` days (read at launch) go
through the same attribution; those whose person changed -- an anonymous cookie that logged in,
two persons merged, an identifier quarantined since -- are re-emitted with the new person (the
touchpoints table merges by event_id, so the stored row is replaced), counted in
``touchline/identity.reattributed``. Older touchpoints are deliberately left as they are; their
old person ids resolve through ``person_merges``. Each re-attributed touchpoint adds a recompute
scope (person, event_date) for its old and its new person, so journeys and scores of both are
recomputed from that day. A stored touchpoint that this run has again (a replay of the same input,
e.g. after a stream attributed it to a provisional person id) is written with this run's person;
if the stored version belonged to another person, that person gets the scope too, so rows derived
under the old id do not linger.
"""

from __future__ import annotations

from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics

from ..packing import PackedCoGroupByKey, pack, unpack
from ..parse import NAMESPACE
from .broadcast import SetCache
from .graph import strongest

UNATTRIBUTED = "unattributed"
CURRENT = "current"
HISTORY = "history"


#: Key of an unattributable touchpoint in the attribution join: never an id_hash (hex), unique per
#: event, so it meets no person and no other event (nothing piles up on one key).
NO_IDENTIFIER = "\x00"


def _packed(touchpoint: dict) -> tuple:
    """Touchpoint -> (event_id, channel, identifiers, packed touchpoint): what keying reads, plus the
    touchpoint as bytes. Made where the touchpoint is made (fused), so the materialized input of
    the keying step (it waits for the ``excluded`` side input) and the join carry bytes."""
    return touchpoint["event_id"], touchpoint["channel"], touchpoint["identifiers"], pack(touchpoint)


class _Key(beam.DoFn):
    """Packed touchpoint -> (strongest usable identifier, (origin, packed touchpoint)); an
    unattributable one is keyed ``NO_IDENTIFIER + event_id`` and goes through the same join (it
    meets no person there). One output instead of two means no Flatten of two branches afterwards
    (on the local runner a Flatten copies every element through a buffer)."""

    def __init__(self, origin: str):
        self._origin = origin

    def setup(self):
        self._excluded = SetCache()
        self._unattributed = {}

    def process(self, element, excluded):
        event_id, channel, identifiers, blob = element
        best = strongest(identifiers, self._excluded(excluded))
        if best is None:
            if self._origin == CURRENT:
                if channel not in self._unattributed:
                    self._unattributed[channel] = Metrics.counter(NAMESPACE, f"{channel}.unattributed")
                self._unattributed[channel].inc()
            yield NO_IDENTIFIER + event_id, (self._origin, blob)
            return
        yield best["id_hash"], (self._origin, blob)


class _Attribute(beam.DoFn):
    """id_hash, {person, touchpoints} -> current touchpoints with their person; moved history tagged."""

    def process(self, element):
        _id_hash, grouped = element
        persons = grouped["person"]
        person = persons[0] if persons else None
        for origin, blob in grouped["touchpoints"]:
            yield from attribute(origin, unpack(blob), person)
        for origin, blob in grouped.get(HISTORY, ()):
            yield from attribute(origin, unpack(blob), person)


def attribute(origin: str, touchpoint: dict, person: str | None):
    if origin == CURRENT:
        yield {**touchpoint, "person_id": person}
    elif touchpoint["person_id"] != person:
        yield beam.pvalue.TaggedOutput(HISTORY, (touchpoint["event_id"], ({**touchpoint, "person_id": person}, touchpoint["person_id"])))


class _KeepMoved(beam.DoFn):
    """event_id, {current, moved} -> the re-attributed touchpoint unless this run also has the event.

    When this run has the event too, its own version is written; but if the stored version belonged
    to another person (a stream's provisional id, an earlier run's attribution), that person's
    journeys and scores from the event's day are recomputed without it (a scope row)."""

    def setup(self):
        self._moved = Metrics.counter(NAMESPACE, "identity.reattributed")

    def process(self, element):
        _event_id, grouped = element
        if any(True for _ in grouped["current"]):
            for touchpoint, old_person in grouped["moved"]:
                if old_person is not None:
                    yield beam.pvalue.TaggedOutput("scopes", (old_person, touchpoint["event_date"]))
            return
        for touchpoint, old_person in grouped["moved"]:
            self._moved.inc()
            yield touchpoint
            day = touchpoint["event_date"]
            if old_person is not None:
                yield beam.pvalue.TaggedOutput("scopes", (old_person, day))
            if touchpoint["person_id"] is not None:
                yield beam.pvalue.TaggedOutput("scopes", (touchpoint["person_id"], day))
            return


class AttributeTouchpoints(beam.PTransform):
    """{touchpoints, [history], persons: (id_hash, person_id), excluded: id_hashes}
    -> {touchpoints: this run's (with person_id) + re-attributed history, scopes: (person_id, day)}.
    Without ``history`` (a first run, or a lookback of 0) the re-attribution steps are left out."""

    def expand(self, inputs):
        excluded = beam.pvalue.AsList(inputs["excluded"])
        current = (inputs["touchpoints"] | "PackCurrent" >> beam.Map(_packed)
                   | "KeyCurrent" >> beam.ParDo(_Key(CURRENT), excluded))
        if "history" not in inputs:  # nothing stored to re-attribute (a first run, or lookback 0)
            attributed = (
                {"person": inputs["persons"], "touchpoints": current}
                | "JoinPersons" >> PackedCoGroupByKey()
                | "Attribute" >> beam.ParDo(_Attribute()).with_output_types(Any).with_outputs(HISTORY, main=CURRENT)
            )
            return {
                "touchpoints": attributed[CURRENT],
                "scopes": inputs["touchpoints"].pipeline | "NoScopes" >> beam.Create([]),
            }
        history = (inputs["history"] | "PackHistory" >> beam.Map(_packed)
                   | "KeyHistory" >> beam.ParDo(_Key(HISTORY), excluded))
        attributed = (
            {"person": inputs["persons"], "touchpoints": current, HISTORY: history}
            | "JoinPersons" >> PackedCoGroupByKey()
            | "Attribute" >> beam.ParDo(_Attribute()).with_output_types(Any).with_outputs(HISTORY, main=CURRENT)
        )
        this_run = attributed[CURRENT]
        moved = (
            {
                "current": this_run | "CurrentIds" >> beam.Map(lambda tp: (tp["event_id"], None)),
                "moved": attributed[HISTORY],
            }
            | "JoinCurrentIds" >> beam.CoGroupByKey()
            | "KeepMoved" >> beam.ParDo(_KeepMoved()).with_output_types(Any).with_outputs("scopes", main="touchpoints")
        )
        return {
            "touchpoints": (this_run, moved["touchpoints"]) | "AllTouchpoints" >> beam.Flatten(),
            "scopes": moved["scopes"],
        }
