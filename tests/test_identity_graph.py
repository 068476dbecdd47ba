"""The identity graph: star links per event, junk values by keyed hash, order-free merging with the stored graph."""

from __future__ import annotations

import itertools

import apache_beam as beam
from apache_beam.testing.util import assert_that, equal_to

from touchline.transforms.identity.graph import (
    BuildGraph, _MergeLink, _Observe, blocklist_hashes, node_id, parse_blocklist, strongest,
)

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
    fn = _Observe("demo", ())
    fn.setup()
    out = list(fn.process(touchpoint))
    links = [x for x in out if not isinstance(x, beam.pvalue.TaggedOutput)]
    nodes = [x.value for x in out if isinstance(x, beam.pvalue.TaggedOutput)]
    return nodes, links


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


def test_link_merging_does_not_depend_on_input_order():
    stored = ("previous", {"kind": "customer_id", "linked_kind": "device_id", "first_seen": 5, "last_seen": 9})
    seen = [("customer_id", "device_id", 7, 7), ("customer_id", "device_id", 3, 4), ("customer_id", "device_id", 12, 12)]
    fn = _MergeLink()
    results = set()
    for order in itertools.permutations([stored, *seen]):
        for split in range(len(order) + 1):  # two partial accumulators, as a lifted combine makes them
            a, b = fn.create_accumulator(), fn.create_accumulator()
            for value in order[:split]:
                a = fn.add_input(a, value)
            for value in order[split:]:
                b = fn.add_input(b, value)
            out = fn.extract_output(fn.merge_accumulators([a, b]))
            results.add(tuple(sorted((k, str(v)) for k, v in out.items())))
    assert len(results) == 1
    (result,) = results
    assert dict(result) == {"kind": "customer_id", "linked_kind": "device_id", "first_seen": "3", "last_seen": "12",
                            "previous": "(5, 9)"}


def test_build_graph_merges_this_run_with_the_stored_graph():
    a, b = h("customer_id", "C1"), h("device_id", "dev1")
    stored_link = {"id_hash": min(a, b), "kind": "device_id" if b < a else "customer_id", "linked_hash": max(a, b),
                   "linked_kind": "customer_id" if b < a else "device_id", "first_seen": T0 - 5, "last_seen": T0 - 5,
                   "run_id": "r0"}
    events = [tp("e1", 0, "app", customer_id="C1", device_id="dev1"), tp("e2", 1, "app", customer_id="C1", device_id="dev1")]
    with beam_pipeline() as p:
        graph = {"touchpoints": p | "T" >> beam.Create(events),
                 "identity_links": p | "L" >> beam.Create([stored_link])} | BuildGraph("demo")
        links = graph["links"] | beam.Map(lambda kv: (kv[0], kv[1]["first_seen"], kv[1]["last_seen"], kv[1]["previous"]))
        assert_that(links, equal_to([((min(a, b), max(a, b)), T0 - 5, T0 + 86_400_000_000, (T0 - 5, T0 - 5))]))
        nodes = graph["nodes"] | "Kinds" >> beam.Map(lambda kv: (kv[0], kv[1][1]))
        # this run's observations are combined per identifier before they leave the graph step
        assert_that(nodes, equal_to([(a, "customer_id"), (b, "device_id")]), label="NodeEvents")
        seen = graph["nodes"] | "Seen" >> beam.Map(lambda kv: (kv[0], kv[1][2], kv[1][3]))
        assert_that(seen, equal_to([(a, T0, T0 + 86_400_000_000), (b, T0, T0 + 86_400_000_000)]), label="FirstLastSeen")
