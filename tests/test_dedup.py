import random

import apache_beam as beam
from apache_beam.testing.util import assert_that, equal_to

from touchline.transforms import batches
from touchline.transforms.dedup import DeduplicateTouchpoints, content_digest, deduplicate
from touchline.transforms.parse import DEAD_LETTERS, TOUCHPOINTS

from .batch_io import TOUCHPOINT, ToRows, full_touchpoint, touchpoint_batches
from .conftest import beam_pipeline


def tp(event_id, source, **over):
    row = {"event_id": event_id, "channel": "web", "event_type": "page_view", "event_time": 1, "event_date": 0,
           "person_id": None, "role": "customer", "identifiers": [], "attributes": {}, "source": source}
    row.update(over)
    return full_touchpoint(row)


def test_copies_collapse_and_conflicts_become_dead_letters(ctx):
    rows = [tp("a", "f@3"), tp("a", "f@1"), tp("a", "g@0"),          # three exact copies
            tp("b", "f@5"),                                          # unique
            tp("c", "f@7"), tp("c", "f@8", event_time=2)]            # conflict
    with beam_pipeline() as p:
        out = p | beam.Create(touchpoint_batches(rows, ctx.buckets)) | DeduplicateTouchpoints(ctx)
        assert_that(out[TOUCHPOINTS] | ToRows("touchpoints")
                    | beam.Map(lambda t: (t["event_id"], t["source"]) if t["event_id"] != "c" else "c"),
                    equal_to([("a", "f@1"), ("b", "f@5"), "c"]), label="Unique")
        assert_that(out[DEAD_LETTERS] | "DeadRows" >> ToRows("dead_letters")
                    | "Reasons" >> beam.Map(lambda d: (d["event_id"], d["reason"], d["failed_step"])),
                    equal_to([("c", "conflicting_duplicate", "Dedup")]), label="Conflicts")


def _reference(copies):
    """Deduplication the obvious way: every copy's digest, smallest source per digest, smallest digest wins."""
    versions = {}
    for copy in copies:
        d = content_digest(copy)
        if d not in versions or copy["source"] < versions[d]["source"]:
            versions[d] = copy
    order = [versions[d] for d in sorted(versions)]
    return order[0], order[1:], len(copies) - len(order)


def test_winner_losers_and_counts_do_not_depend_on_order_or_batching():
    """Any order of the copies in any split into tables (as pieces arrive from the shuffle) gives the
    reference result; a single copy's digest is never needed."""
    base = {"event_type": "page_view", "event_time": 1}
    copies = [tp("e1", f"f@{i}", **base) for i in (5, 3, 9)] + [tp("e1", f"g@{i}", event_type="click") for i in (7, 2)]
    copies += [tp("e2", "h@1"), tp("e3", "h@2", attributes={"k": "v"}), tp("e3", "h@0", attributes={"k": "v"})]
    rng = random.Random(3)
    for _ in range(30):
        rng.shuffle(copies)
        cut = rng.randint(0, len(copies))
        table = batches.concat([batches.from_rows(part, TOUCHPOINT) for part in (copies[:cut], copies[cut:]) if part])
        unique, losers, duplicates = deduplicate(table)
        kept = {r["event_id"]: r for r in batches.datum_rows(unique, TOUCHPOINT)}
        assert set(kept) == {"e1", "e2", "e3"}
        for event_id in kept:
            winner, expected_losers, dropped = _reference([c for c in copies if c["event_id"] == event_id])
            assert kept[event_id] == winner
            assert sorted(l["source"] for l, w in losers if l["event_id"] == event_id) == sorted(l["source"] for l in expected_losers)
        assert duplicates == {"web": 3 + 1}  # e1: 5 copies, 2 versions; e3: 2 exact copies


def test_digest_ignores_lineage_only():
    assert content_digest(tp("a", "x@1")) == content_digest(tp("a", "y@2", person_id="p"))
    assert content_digest(tp("a", "x@1")) != content_digest(tp("a", "x@1", attributes={"k": "v"}))
