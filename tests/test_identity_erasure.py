"""Erasure: the pipeline honours the list; Warehouse.erase deletes by schema metadata, atomically."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from touchline import schemas
from touchline.schemas.arrow import arrow_schema
from touchline.transforms.packing import Shuffle, pack, unpack
from touchline.transforms.identity.erasure import DropErasedDeadLetters, StripErased, is_erased, strip_erased
from touchline.transforms.warehouse.duckdb import DuckDBWarehouse

from .identity_world import h, tp


def _strip(fn, rows, erased):
    from touchline.transforms import batches

    from .batch_io import TOUCHPOINT, full_touchpoint

    fn.setup()
    out = list(fn.process((0, pack(batches.from_rows([full_touchpoint(r) for r in rows], TOUCHPOINT))), erased))
    return [dict(zip(t.column_names, v)) for _, b in out for t in [unpack(b)] for v in zip(*(t.column(c).to_pylist() for c in t.column_names))]


def test_events_of_erased_persons_are_dropped_and_erased_ids_stripped_from_others():
    erased = [h("device_id", "dev-ann"), h("customer_id", "C-ANN")]
    own = tp("a", 0, "app", customer_id="C-ANN", device_id="dev-ann")
    anon = tp("b", 0, "app", device_id="dev-ann")
    other = tp("c", 0, "app", customer_id="C-NEW", device_id="dev-ann")  # the phone was sold
    (kept,) = _strip(StripErased(Shuffle()), [own, anon, other], erased)
    assert kept["event_id"] == "c"
    assert kept["identifiers"] == [{"kind": "customer_id", "id_hash": h("customer_id", "C-NEW")}]
    assert not is_erased(tp("d", 0, "app"), frozenset(erased))  # no identifiers at all: not erased
    assert strip_erased(other["identifiers"], frozenset()) is other["identifiers"]  # nothing erased: the same list
    # stored touchpoints: an erased person's stays as stored, flagged (no attribution), others are stripped
    stored = _strip(StripErased(Shuffle(), history=True), [own, other], erased)
    assert [(r["event_id"], r["_erased"], len(r["identifiers"])) for r in stored] == [("a", True, 2), ("c", False, 1)]


def test_dead_letters_carrying_erased_tokens_are_dropped():
    fn = DropErasedDeadLetters()
    fn.setup()
    mine = {"channel": "web", "raw_payload": json.dumps({"email": f"<email:{h('email', 'a@x.example')}>"})}
    other = {"channel": "web", "raw_payload": json.dumps({"email": f"<email:{h('email', 'b@x.example')}>"})}
    assert list(fn.process(("k", [mine]), [h("email", "a@x.example")])) == []
    [(key, kept)] = fn.process(("k", [mine, other]), [h("email", "a@x.example")])
    assert (key, unpack(kept)) == ("k", [other])  # what is kept is packed again
    packed = pack([mine, other])
    [(_, kept)] = fn.process(("k", packed), [h("email", "a@x.example")])
    assert unpack(kept) == [other]
    assert list(fn.process(("k", packed), [h("email", "c@x.example")])) == [("k", packed)]  # nothing dropped: as given


THING = {
    "type": "record", "name": "Score", "namespace": "test",
    "touchline": {"table": "scores", "key": ["person_id", "day"], "erase_by": {"person_id": "person_id"}},
    "fields": [{"name": "person_id", "type": "string"}, {"name": "day", "type": "int"}],
}


@pytest.fixture
def later_table(tmp_path, monkeypatch):
    """A table another stage adds later (journeys, scores): covered through its erase_by metadata alone."""
    folder = tmp_path / "extra_schemas"
    folder.mkdir()
    (folder / "score.avsc").write_text(json.dumps(THING))
    monkeypatch.setattr(schemas, "_extra_schema_dirs", lambda: [folder])
    schemas.clear_cache()
    yield
    monkeypatch.undo()
    schemas.clear_cache()


def _stage(root, table, rows):
    folder = root / table
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=arrow_schema(schemas.table_schema(table))), folder / "part.parquet")


def test_warehouse_erase_follows_erase_by_in_every_table(tmp_path, later_table):
    mail = h("email", "ann@x.example")
    dl = lambda i, payload, event=None: {  # noqa: E731
        "dead_letter_id": f"d{i}", "run_id": "r", "logical_date": 1, "channel": "web", "source": f"f@{i}",
        "failed_step": "Decode", "reason": "invalid_json", "error_class": "X", "error_message": "m", "stack": None,
        "event_id": event, "payload_encoding": "text", "raw_payload": payload}
    staging = tmp_path / "staging"
    _stage(staging, "scores", [{"person_id": "p_ann", "day": 1}, {"person_id": "p_old", "day": 1}, {"person_id": "p_bob", "day": 1}])
    _stage(staging, "dead_letters", [dl(1, f'{{"email": "<email:{mail}>"}}'), dl(2, "{broken", event="e-ann"), dl(3, "{bob")])
    _stage(staging, "identity_map", [
        {"id_hash": mail, "kind": "email", "person_id": "p_ann", "status": "linked", "first_seen": 0, "last_seen": 0,
         "degree": 1, "run_id": "r", "updated_on": 1},
        {"id_hash": "b" * 32, "kind": "email", "person_id": "p_bob", "status": "linked", "first_seen": 0, "last_seen": 0,
         "degree": 1, "run_id": "r", "updated_on": 1}])
    wh = DuckDBWarehouse(str(tmp_path / "w.duckdb"))
    wh.commit(str(staging), ["scores", "dead_letters", "identity_map"])
    request = {"id_hash": mail, "kind": "email", "person_id": "p_ann", "request_id": "q1", "requested_at": 5}
    deleted = wh.erase(["p_ann", "p_old"], [mail], ["e-ann"], [request])
    assert deleted["scores"] == 2 and deleted["dead_letters"] == 2 and deleted["identity_map"] == 1
    assert deleted["erasure_requests"] == 1 and deleted["touchpoints"] == 0
    assert wh.query("SELECT person_id FROM scores") == [("p_bob",)]
    assert wh.query("SELECT dead_letter_id FROM dead_letters") == [("d3",)]
    # the list keeps the first request of an identifier; a second erase of it adds nothing
    assert wh.erase([], [mail], [], [{**request, "request_id": "q2"}])["erasure_requests"] == 0
    assert wh.query("SELECT request_id FROM erasure_requests") == [("q1",)]
    wh.close()
