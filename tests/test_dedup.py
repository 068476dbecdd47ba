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


def _reference_versions(touchpoints):
    """The combiner's result computed the obvious way: every copy's digest, smallest source per digest."""
    from touchline.transforms.dedup import content_digest

    versions = {}
    for tp in touchpoints:
        d = content_digest(tp)
        if d not in versions or tp["source"] < versions[d]["source"]:
            versions[d] = tp
    return len(touchpoints), [versions[d] for d in sorted(versions)]


def test_combiner_gives_the_reference_result_for_any_split_and_order():
    """The lazy digest (computed only once a second copy arrives) changes nothing: any partition of
    the copies into partial accumulators, merged in any order, gives the reference result."""
    import random

    from touchline.transforms.dedup import _Versions
    from touchline.transforms.packing import pack, unpack

    fn = _Versions()
    base = {"event_id": "e1", "channel": "web", "event_type": "page_view", "event_time": 1, "person_id": None}
    copies = [{**base, "source": f"f@{i}"} for i in (5, 3, 9)] + [{**base, "event_type": "click", "source": f"g@{i}"} for i in (7, 2)]
    rng = random.Random(3)
    for n in range(1, len(copies) + 1):
        for _ in range(40):
            chosen = rng.sample(copies, n)
            parts = [[] for _ in range(rng.randint(1, 4))]
            for tp in chosen:
                rng.choice(parts).append(tp)
            accs = []
            for part in parts:
                acc = fn.create_accumulator()
                for tp in part:
                    acc = fn.add_input(acc, pack(tp))
                accs.append(acc)
            rng.shuffle(accs)
            merged = fn.merge_accumulators(accs)
            if rng.random() < 0.5:  # merging again (a runner may merge merged accumulators)
                merged = fn.merge_accumulators([fn.create_accumulator(), merged])
            count, versions = fn.extract_output(merged)
            assert (count, [unpack(blob) for blob in versions]) == _reference_versions(chosen)
