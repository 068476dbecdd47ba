"""Attribution: the strongest usable identifier decides (the join and re-attribution of history run in
the identity scenarios of test_identity_stitching and test_identity_lifecycle)."""

from touchline.transforms.identity.attribute import attribution_key

from .identity_world import h, tp


def test_key_is_the_strongest_identifier_that_is_not_quarantined():
    ids = tp("e", 0, "app", customer_id="C1", device_id="kiosk")["identifiers"]
    assert attribution_key(ids, frozenset()) == h("customer_id", "C1")
    assert attribution_key(ids, {h("customer_id", "C1")}) == h("device_id", "kiosk")
    # unattributable: no key (it is routed by its event_id and meets no person in the join)
    assert attribution_key(ids, {h("customer_id", "C1"), h("device_id", "kiosk")}) is None
    assert attribution_key([], frozenset()) is None


def test_current_touchpoints_get_their_person_and_history_moves_only_when_it_changed():
    import apache_beam as beam
    import pyarrow as pa
    from apache_beam.testing.util import assert_that, equal_to

    from touchline.transforms import batches
    from touchline.transforms.identity.attribute import IN_RUN, AttributeTouchpoints
    from touchline.transforms.packing import Shuffle, pack

    from .batch_io import TOUCHPOINT, ToRows, full_touchpoint
    from .conftest import beam_pipeline

    buckets = 4
    e1, c1 = h("employee_id", "E1"), h("cookie_id", "ck")
    now = tp("now", 0, "web", role="employee", employee_id="E1")
    stay = tp("stay", 0, "web", employee_id="E1", person_id="p_1")        # stored, same person: not re-emitted
    moved = tp("moved", 0, "web", cookie_id="ck", person_id="p_old")     # stored, another person now: re-emitted
    replayed = tp("now", 0, "web", cookie_id="ck", person_id="p_stream")  # this run has it: this run's version wins

    def history_batches(rows, flags):
        table = batches.from_rows([full_touchpoint(r) for r in rows], TOUCHPOINT).append_column(IN_RUN, pa.array(flags))
        return [(0, pack(table))]

    with beam_pipeline() as p:
        out = {
            "touchpoints": p | "T" >> beam.Create([(0, pack(batches.from_rows([full_touchpoint(now)], TOUCHPOINT)))]),
            "history": p | "H" >> beam.Create(history_batches([stay, moved, replayed], [False, False, True])),
            "persons": p | "P" >> beam.Create([(batches.bucket(e1, buckets), pack([(e1, "p_1")])),
                                               (batches.bucket(c1, buckets), pack([(c1, "p_1")]))]),
            "excluded": p | "X" >> beam.Create([]),
        } | AttributeTouchpoints(Shuffle(buckets))
        assert_that(out["touchpoints"] | "Rows" >> ToRows("touchpoints") | beam.Map(lambda r: (r["event_id"], r["person_id"], r["role"])),
                    equal_to([("now", "p_1", "employee"), ("moved", "p_1", "customer")]), label="Attributed")
        assert_that(out["stored"] | "StoredRows" >> ToRows("touchpoints") | "Ids" >> beam.Map(lambda r: (r["event_id"], r["person_id"])),
                    equal_to([("stay", "p_1")]), label="Stored")
        # the moved one rescopes both persons from its day; the replayed one only its old person
        assert_that(out["scopes"] | beam.FlatMap(lambda pairs: pairs),
                    equal_to([("p_old", moved["event_date"]), ("p_1", moved["event_date"]), ("p_stream", now["event_date"])]),
                    label="Scopes")


def test_only_stored_touchpoints_holding_a_moved_identifier_or_replayed_go_through_attribution():
    import apache_beam as beam
    import pyarrow as pa
    from apache_beam.testing.util import assert_that, equal_to

    from touchline.transforms import batches
    from touchline.transforms.identity.attribute import IN_RUN, UNMOVED, SplitMovable
    from touchline.transforms.packing import Shuffle, pack, unpack

    from .batch_io import TOUCHPOINT, full_touchpoint
    from .conftest import beam_pipeline

    rows = [tp("still", 0, "web", cookie_id="ck-1", person_id="p_1"),               # nothing of it moved
            tp("weak", 0, "app", customer_id="C1", device_id="d-2", person_id="p_1"),  # its weaker identifier moved
            tp("again", 0, "web", cookie_id="ck-1", person_id="p_1"),               # this run has it
            tp("bare", 0, "web", person_id=None)]                                   # no identifiers at all
    table = batches.from_rows([full_touchpoint(r) for r in rows], TOUCHPOINT).append_column(
        IN_RUN, pa.array([False, False, True, False]))

    def ids(element):
        table = unpack(element[1])
        return [(e, IN_RUN in table.column_names) for e in table.column("event_id").to_pylist()]

    with beam_pipeline() as p:
        moved = p | "Moved" >> beam.Create([[h("device_id", "d-2"), h("email", "never-stored@example.com")]])
        split = (p | beam.Create([(3, pack(table))])
                 | beam.ParDo(SplitMovable(Shuffle(4)), beam.pvalue.AsSingleton(moved)).with_outputs(UNMOVED, main="movable"))
        # the movable keep the helper column attribution reads; the others leave as stored
        assert_that(split["movable"] | "M" >> beam.FlatMap(ids), equal_to([("weak", True), ("again", True)]), label="Movable")
        assert_that(split[UNMOVED] | "U" >> beam.FlatMap(ids), equal_to([("still", False), ("bare", False)]), label="Unmoved")
