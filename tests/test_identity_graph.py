"""The identity graph: star links per event, junk values by keyed hash, order-free merging with the stored graph."""

from __future__ import annotations

import datetime as dt
import itertools

import apache_beam as beam
from apache_beam.testing.util import assert_that, equal_to

from touchline.transforms.context import RunContext
from touchline.transforms.identity.graph import (
    BuildGraph, blocklist_hashes, link_row, merge_links, node_id, observe, parse_blocklist, strongest,
)
from touchline.transforms.packing import unpack

from .batch_io import create_table, touchpoint_batches
from .conftest import beam_pipeline
from .identity_world import HASHER, T0, h, tp


def test_blocklist_file_lines():
    lines = ["# junk we saw", "", "email:noreply@shop.example", "device_id:0000-0000", "00:00:00:00:00:00", "N/A  "]
    assert parse_blocklist(lines) == (("email", "noreply@shop.example"), ("device_id", "0000-0000"),
                                      ("*", "00:00:00:00:00:00"), ("*", "N/A  "))


def test_blocklist_is_compared_by_keyed_hash_of_the_normalized_value():
    blocked = blocklist_hashes(HASHER, [("email", "NoReply@Shop.example")])
    assert h("email", " TEST@test.com") in blocked  # built-in, any spelling
    assert h("email", "noreply@shop.example") in blocked  # extra, normalized
    assert h("device_id", "00000000-0000-0000-0000-000000000000") in blocked
    assert h("customer_id", "null") in blocked and h("cookie_id", "undefined") in blocked  # "*" entries: every kind
    assert h("email", "alice@example.com") not in blocked
    assert all(len(x) == 32 for x in blocked)  # hashes only, no clear text kept


def _observe(touchpoint):
    nodes, links = observe([touchpoint["identifiers"]], [touchpoint["event_time"]], blocklist_hashes(HASHER))
    return nodes, list(links.items())


def test_each_event_is_a_star_around_its_strongest_identifier():
    event = tp("e", 0, "web", customer_id="C1", email="a@x.example", cookie_id="ck1", phone="+1 212 555 0100")
    nodes, links = _observe(event)
    assert len(nodes) == 4 and len(links) == 3  # a star: n - 1 links, not a clique's n(n-1)/2
    center = h("customer_id", "C1")
    assert all(center in pair for pair, _ in links)
    assert all(pair[0] < pair[1] for pair, _ in links)  # stored once, in order
    # a junk value is never the center while a real identifier exists
    nodes, links = _observe(tp("j", 0, "web", email="null", cookie_id="ck9", customer_id=None))
    assert [pair for pair, _ in links] == [tuple(sorted((h("email", "null"), h("cookie_id", "ck9"))))]
    assert strongest(tp("s", 0, email="a@x.example", cookie_id="ck")["identifiers"])["kind"] == "email"
    assert node_id("customer_id", "ab") == "0ab" and node_id("cookie_id", "ab") == "5ab"


def test_observations_are_combined_over_a_batch():
    events = [tp("e1", 0, "app", customer_id="C1", device_id="dev1"), tp("e2", 1, "app", customer_id="C1", device_id="dev1")]
    nodes, links = observe([e["identifiers"] for e in events], [e["event_time"] for e in events], frozenset())
    assert nodes[h("customer_id", "C1")] == ["customer_id", T0, T0 + 86_400_000_000]
    ((pair, link),) = links.items()
    assert link[2:] == [T0, T0 + 86_400_000_000]


def test_link_merging_does_not_depend_on_input_order():
    stored = {"id_hash": "a", "linked_hash": "b", "kind": "customer_id", "linked_kind": "device_id", "first_seen": 5, "last_seen": 9}
    seen = [("a", "b", "customer_id", "device_id", 7, 7), ("a", "b", "customer_id", "device_id", 3, 4),
            ("a", "b", "customer_id", "device_id", 12, 12)]
    results = set()
    for order in itertools.permutations(seen):
        out = merge_links(order, [stored])
        results.add(repr(out))
    assert len(results) == 1
    assert merge_links(seen, [stored]) == {("a", "b"): ["customer_id", "device_id", 3, 12, (5, 9)]}
    # an unchanged stored link writes no row; a changed one does
    assert link_row("a", "b", ["customer_id", "device_id", 5, 9, (5, 9)], "r") is None
    assert link_row("a", "b", ["customer_id", "device_id", 3, 12, (5, 9)], "r")["first_seen"] == 3


def test_build_graph_merges_this_run_with_the_stored_graph():
    a, b = h("customer_id", "C1"), h("device_id", "dev1")
    stored_link = {"id_hash": min(a, b), "kind": "device_id" if b < a else "customer_id", "linked_hash": max(a, b),
                   "linked_kind": "customer_id" if b < a else "device_id", "first_seen": T0 - 5, "last_seen": T0 - 5,
                   "run_id": "r0"}
    events = [tp("e1", 0, "app", customer_id="C1", device_id="dev1"), tp("e2", 1, "app", customer_id="C1", device_id="dev1")]
    ctx = RunContext("r", dt.date(2026, 10, 31), "demo", buckets=3)
    with beam_pipeline() as p:
        # both events in one touchpoint batch (as in one dedup bucket)
        graph = {"touchpoints": p | "T" >> beam.Create(touchpoint_batches(events, 1)),
                 "identity_links": create_table(p, "L", "identity_links", [stored_link])} | BuildGraph(ctx)
        links = graph["links"] | beam.FlatMap(lambda kv: [(a_, b_, first) for a_, b_, _k, _lk, first in unpack(kv[1])])
        assert_that(links, equal_to([(min(a, b), max(a, b), T0 - 5)]))
        rows = graph["rows"] | "Rows" >> beam.FlatMap(lambda kv: [(r["first_seen"], r["last_seen"]) for r in kv[1]])
        assert_that(rows, equal_to([(T0 - 5, T0 + 86_400_000_000)]), label="ChangedRow")
        nodes = graph["nodes"] | "Kinds" >> beam.FlatMap(lambda kv: [(n[0], n[1], n[2], n[3]) for n in unpack(kv[1])])
        # this run's observations are combined per identifier and batch before they leave the graph step
        assert_that(nodes, equal_to([(a, "customer_id", T0, T0 + 86_400_000_000), (b, "device_id", T0, T0 + 86_400_000_000)]),
                    label="NodeEvents")
        tells = graph["tells"] | "Tells" >> beam.FlatMap(lambda kv: [t[:3] for t in unpack(kv[1])])
        assert_that(tells, equal_to([(a, b, "device_id"), (b, a, "customer_id")]), label="BothEndsTold")
