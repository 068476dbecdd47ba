import apache_beam as beam
from apache_beam.testing.util import assert_that, equal_to

from touchline.transforms.dedup import DeduplicateTouchpoints, content_digest
from touchline.transforms.parse import DEAD_LETTERS, TOUCHPOINTS

from .conftest import beam_pipeline


def tp(event_id, source, **over):
    row = {"event_id": event_id, "channel": "web", "event_type": "page_view", "event_time": 1, "event_date": 0,
           "person_id": None, "role": "customer", "identifiers": [], "attributes": {}, "source": source}
    row.update(over)
    return row


def test_copies_collapse_and_conflicts_become_dead_letters(ctx):
    rows = [tp("a", "f@3"), tp("a", "f@1"), tp("a", "g@0"),          # three exact copies
            tp("b", "f@5"),                                          # unique
            tp("c", "f@7"), tp("c", "f@8", event_time=2)]            # conflict
    with beam_pipeline() as p:
        out = p | beam.Create(rows) | DeduplicateTouchpoints(ctx)
        assert_that(out[TOUCHPOINTS] | beam.Map(lambda t: (t["event_id"], t["source"]) if t["event_id"] != "c" else "c"),
                    equal_to([("a", "f@1"), ("b", "f@5"), "c"]), label="Unique")
        assert_that(out[DEAD_LETTERS] | beam.Map(lambda d: (d["event_id"], d["reason"], d["failed_step"])),
                    equal_to([("c", "conflicting_duplicate", "Dedup")]), label="Conflicts")


def test_winner_of_a_conflict_does_not_depend_on_order(ctx):
    versions = [tp("c", f"f@{i}", event_time=i) for i in range(5)]
    winner = min(versions, key=content_digest)["event_time"]
    for order in (versions, versions[::-1], versions[2:] + versions[:2]):
        with beam_pipeline() as p:
            out = p | beam.Create(order) | DeduplicateTouchpoints(ctx)
            assert_that(out[TOUCHPOINTS] | beam.Map(lambda t: t["event_time"]), equal_to([winner]))


def test_digest_ignores_lineage_only():
    assert content_digest(tp("a", "x@1")) == content_digest(tp("a", "y@2", person_id="p"))
    assert content_digest(tp("a", "x@1")) != content_digest(tp("a", "x@1", attributes={"k": "v"}))
