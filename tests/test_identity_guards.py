"""Guards: junk values, degree caps and direct unique-id conflicts, computed over the whole stored graph."""

from __future__ import annotations

import apache_beam as beam
from apache_beam.testing.util import assert_that, equal_to

from touchline.transforms.identity.guards import JudgeIdentifiers, _Summarize

from .conftest import beam_pipeline
from .identity_world import T0, h


def link(a, kind_a, b, kind_b):
    pair = (a, b) if a < b else (b, a)
    kinds = (kind_a, kind_b) if a < b else (kind_b, kind_a)
    return pair, {"kind": kinds[0], "linked_kind": kinds[1], "first_seen": T0, "last_seen": T0, "previous": None}


def seen(id_hash, kind):
    return id_hash, ("seen", kind, T0, T0)


def test_summary_counts_distinct_links_and_keeps_two_values_per_unique_kind():
    fn = _Summarize()
    events = [("seen", "device_id", 5, 6), ("link", "c1", "customer_id", False), ("link", "c2", "customer_id", False),
              ("link", "c3", "customer_id", False), ("link", "junk", "email", True),
              ("previous", {"kind": "device_id", "first_seen": 1, "last_seen": 2, "person_id": "p"})]
    a = fn.create_accumulator()
    for e in events[:3]:
        a = fn.add_input(a, e)
    b = fn.create_accumulator()
    for e in events[3:]:
        b = fn.add_input(b, e)
    kind, first, last, previous, degree, uniques = fn.extract_output(fn.merge_accumulators([b, a]))
    assert (kind, first, last, previous["person_id"], degree) == ("device_id", 1, 6, "p", 3)  # junk not counted
    assert len(uniques["customer_id"]) == 2  # enough to know it is a conflict, bounded memory


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
    with beam_pipeline() as p:
        verdicts = {"nodes": p | "N" >> beam.Create(nodes), "links": p | "L" >> beam.Create(links)} | JudgeIdentifiers(
            "demo", (), {"device_id": 3})
        reasons = verdicts | beam.Map(lambda kv: (kv[0], kv[1]["reason"], kv[1]["degree"], kv[1]["conflicting_kinds"], kv[1]["cap"]))
        assert_that(reasons, equal_to(
            [(c1, None, 2, [], None), (c2, None, 1, [], None), (e1, None, 1, [], None),
             (dev, "conflicting_unique_ids", 2, ["customer_id"], None), (kiosk, "degree_cap", 4, [], 3),
             (mail, None, 2, [], None), (zero, "blocklisted", 1, [], None)]
            + [(k, None, 1, [], None) for k in kiosk_users]))
