"""Guards: junk values, degree caps and direct unique-id conflicts, computed over the whole stored graph."""

from __future__ import annotations

import datetime as dt

import apache_beam as beam
from apache_beam.testing.util import assert_that, equal_to

from touchline.transforms.batches import group
from touchline.transforms.context import RunContext
from touchline.transforms.identifiers import DEMO_KEY, Hasher
from touchline.transforms.identity.graph import blocklist_hashes
from touchline.transforms.identity.guards import JudgeIdentifiers, summarize
from touchline.transforms.packing import pack, unpack

from .conftest import beam_pipeline
from .identity_world import T0, h


def link(a, kind_a, b, kind_b):
    """A merged link (a < b) as the link step hands it on: (a, b, kind, linked_kind, first_seen)."""
    if a < b:
        return (a, b, kind_a, kind_b, T0)
    return (b, a, kind_b, kind_a, T0)


def seen(id_hash, kind):
    return (id_hash, kind, T0, T0)


def test_summary_counts_distinct_links_and_keeps_two_values_per_unique_kind():
    nodes = [("d", "device_id", 5, 6)]
    stored = [{"id_hash": "d", "kind": "device_id", "first_seen": 1, "last_seen": 2, "person_id": "p"}]
    tells = [("d", "c1", "customer_id", False), ("d", "c2", "customer_id", False), ("d", "c3", "customer_id", False),
             ("d", "junk", "email", True)]
    for order in (tells, tells[::-1]):
        kind, first, last, previous, degree, uniques = summarize(nodes, stored, order)["d"]
        assert (kind, first, last, previous["person_id"], degree) == ("device_id", 1, 6, "p", 3)  # junk not counted
        assert len(uniques["customer_id"]) == 2  # enough to know it is a conflict, bounded memory
    assert summarize([], [], [("x", "d", "device_id", False)])["x"][0] is None  # only links point at it


def test_verdicts():
    c1, c2, e1, dev, kiosk, mail, zero = (h("customer_id", "C1"), h("customer_id", "C2"), h("employee_id", "E1"),
                                          h("device_id", "family"), h("device_id", "kiosk"), h("email", "m@x.example"),
                                          h("device_id", "00000000-0000-0000-0000-000000000000"))
    nodes = [seen(c1, "customer_id"), seen(c2, "customer_id"), seen(e1, "employee_id"), seen(dev, "device_id"),
             seen(kiosk, "device_id"), seen(mail, "email"), seen(zero, "device_id")]
    links = [link(c1, "customer_id", dev, "device_id"), link(c2, "customer_id", dev, "device_id"),  # household device
             link(c1, "customer_id", mail, "email"), link(e1, "employee_id", mail, "email"),  # customer + employee: fine
             link(c1, "customer_id", zero, "device_id")]
    kiosk_users = [h("customer_id", f"K{i}") for i in range(4)]
    nodes += [seen(k, "customer_id") for k in kiosk_users]
    links += [link(k, "customer_id", kiosk, "device_id") for k in kiosk_users]
    ctx = RunContext("r", dt.date(2026, 10, 31), "demo", buckets=3)
    blocked = blocklist_hashes(Hasher(DEMO_KEY))
    tells = [t for a, b, ka, kb, _ in links for t in ((a, (a, b, kb, b in blocked)), (b, (b, a, ka, a in blocked)))]
    with beam_pipeline() as p:
        judged = {"nodes": p | "N" >> beam.Create([(k, pack(v)) for k, v in group(((n[0], n) for n in nodes), 3).items()]),
                  "tells": p | "L" >> beam.Create([(k, pack(v)) for k, v in group(tells, 3).items()])} | JudgeIdentifiers(
            ctx, (), {"device_id": 3})
        verdicts = (judged["linked"], judged["quarantined"]) | beam.Flatten() | beam.FlatMap(lambda kv: unpack(kv[1]))
        reasons = verdicts | beam.Map(lambda kv: (kv[0], kv[1]["reason"], kv[1]["degree"], kv[1]["conflicting_kinds"], kv[1]["cap"]))
        assert_that(reasons, equal_to(
            [(c1, None, 2, [], None), (c2, None, 1, [], None), (e1, None, 1, [], None),
             (dev, "conflicting_unique_ids", 2, ["customer_id"], None), (kiosk, "degree_cap", 4, [], 3),
             (mail, None, 2, [], None), (zero, "blocklisted", 1, [], None)]
            + [(k, None, 1, [], None) for k in kiosk_users]))
