"""Streaming attribution (transforms/identity/lookup.py): identity_map snapshot + the event's own links."""

import apache_beam as beam
from apache_beam.testing.util import assert_that, equal_to

from touchline.transforms.identifiers import Hasher, normalize
from touchline.transforms.identity.graph import blocklist_hashes
from touchline.transforms.identity.lookup import (FROM_LINKS, FROM_MAP, NONE, PROVISIONAL, AttributeStreaming,
                                                  person_for, snapshot_from_rows)
from touchline.transforms.identity.persons import derived_person_id

from .conftest import beam_pipeline

H = {name: f"{i:032x}" for i, name in enumerate(["cust1", "cust2", "mail1", "mail2", "dev1", "cookie1", "cookie2"], 1)}
MAP = snapshot_from_rows([
    (H["cust1"], "customer_id", "p_alice", "linked", 100),
    (H["mail1"], "email", "p_alice", "linked", 50),
    (H["cookie1"], "cookie_id", "p_anon", "linked", 10),
    (H["dev1"], "device_id", None, "quarantined", 5),
])


def ident(kind, name):
    return {"kind": kind, "id_hash": H[name]}


def test_known_strongest_identifier_gives_its_person():
    assert person_for([ident("cookie_id", "cookie2"), ident("email", "mail1")], MAP) == ("p_alice", FROM_MAP)


def test_quarantined_identifiers_are_skipped_like_in_batch():
    # the device is quarantined: the (unknown) cookie decides, and nothing links it -> provisional id
    assert person_for([ident("device_id", "dev1"), ident("cookie_id", "cookie2")], MAP) == (
        derived_person_id(H["cookie2"]), PROVISIONAL)
    assert person_for([ident("device_id", "dev1")], MAP) == (None, NONE)


def test_in_event_links_follow_the_batch_choice_of_person():
    # a new weak identifier next to a known person's e-mail: that person
    assert person_for([ident("email", "mail2"), ident("email", "mail1")], MAP)[0] == "p_alice"
    # an unknown e-mail typed on a known anonymous cookie -> the anonymous person
    assert person_for([ident("email", "mail2"), ident("cookie_id", "cookie1")], MAP) == ("p_anon", FROM_LINKS)
    # a new customer_id logging in on an anonymous cookie: batch gives the component the id derived
    # from the unique identifier (the anonymous person merges into it), and so does the stream
    assert person_for([ident("customer_id", "cust2"), ident("cookie_id", "cookie1")], MAP) == (
        derived_person_id(H["cust2"]), PROVISIONAL)


def test_unknown_identities_get_a_deterministic_provisional_id_from_the_strongest():
    ids = [ident("cookie_id", "cookie2"), ident("email", "mail2")]
    first = person_for(ids, MAP)
    assert first == person_for(list(reversed(ids)), MAP) == (derived_person_id(H["mail2"]), PROVISIONAL)


def test_blocklisted_values_never_make_a_person():
    hasher = Hasher(b"k" * 32)
    junk = hasher.hash("email", normalize("email", "test@test.com"))
    blocked = blocklist_hashes(hasher)
    assert person_for([{"kind": "email", "id_hash": junk}], MAP, blocked) == (None, NONE)


def test_erased_persons_stay_out_of_the_stream():
    snapshot = snapshot_from_rows([], erased=[H["mail1"], H["dev1"]])
    rows = [{"event_id": "e1", "channel": "web", "identifiers": [ident("email", "mail1"), ident("cookie_id", "cookie2")],
             "person_id": None},                                   # the erased person's event: dropped
            {"event_id": "e2", "channel": "app", "identifiers": [ident("email", "mail2"), ident("device_id", "dev1")],
             "person_id": None}]                                   # someone else on their old device: kept, without it
    with beam_pipeline() as p:
        out = p | beam.Create(rows) | AttributeStreaming(p | "Snap" >> beam.Create([snapshot]), "demo")
        assert_that(out | beam.Map(lambda tp: (tp["event_id"], [i["id_hash"] for i in tp["identifiers"]], tp["person_id"])),
                    equal_to([("e2", [H["mail2"]], derived_person_id(H["mail2"]))]))


def test_attribute_streaming_uses_the_snapshot_side_input():
    rows = [{"event_id": "e1", "channel": "web", "identifiers": [ident("email", "mail1")], "person_id": None},
            {"event_id": "e2", "channel": "web", "identifiers": [], "person_id": None}]
    with beam_pipeline() as p:
        snapshots = p | "Snap" >> beam.Create([MAP])
        out = p | beam.Create(rows) | AttributeStreaming(snapshots, "demo")
        assert_that(out | beam.Map(lambda tp: (tp["event_id"], tp["person_id"])), equal_to([("e1", "p_alice"), ("e2", None)]))
