"""The Identity composite on the DirectRunner: each requirement of identity stitching as a scenario.

Scenarios use disjoint identifiers, so one pipeline run checks many of them (runs are the expensive
part); a second run from scratch checks stability, a third run on top of the first checks merges,
late links and re-attribution.
"""

from __future__ import annotations

import random

import pytest

from touchline.transforms.identity import IdentityConfig

from .identity_world import carry, ctx, h, person_of, persons_by_event, run_identity, tp

CROWD = 10_000  # customers sharing one kiosk device
INBOX = 2_000  # anonymous visitors typing one shared address (cap 100)


def small_world() -> list[dict]:
    events = [
        # 1. one customer across channels; e-mail and phone spelled differently each time
        tp("a-app", 0, "app", customer_id="C-ALICE", device_id="dev-alice", email="Alice@X.com "),
        tp("a-web-anon", 0.5, "web", cookie_id="ck-alice", email="alice@x.com"),
        tp("a-support", 1, "support", email=" ALICE@x.com", phone="+44 20 7946 0958"),
        tp("a-tx", 2, "transactions", customer_id="C-ALICE", phone="0044 (20) 7946-0958", card_fingerprint="fp-alice"),
        # 2. a household device used by two customers: two persons, the device quarantined
        tp("hh-1", 1, "app", customer_id="C-HOME-1", device_id="dev-family"),
        tp("hh-2", 2, "app", customer_id="C-HOME-2", device_id="dev-family"),
        tp("hh-anon", 3, "app", device_id="dev-family"),
        # 3. an indirect chain C-X - e-mail - cookie - C-Y must not make C-X and C-Y one person
        tp("x-login", 0, "app", customer_id="C-X", email="x@corp.example"),
        tp("x-form", 1, "web", cookie_id="ck-xy", email="x@corp.example"),
        tp("y-login", 2, "web", cookie_id="ck-xy", customer_id="C-Y"),
        tp("y-app", 2, "app", customer_id="C-Y", device_id="dev-y"),
        # 4. customer and employee: one person, two roles (the staff app runs on the personal phone)
        tp("r-shop", 0, "app", "customer", customer_id="C-ROLE", device_id="dev-role"),
        tp("r-staff", 1, "app", "employee", employee_id="E-ROLE", device_id="dev-role"),
        tp("r-ticket", 2, "support", "employee", employee_id="E-ROLE", email="role@corp.example"),
        # 5. junk only: all-zero device, "null" e-mail -> no person, counted
        tp("junk-1", 1, "app", device_id="00000000-0000-0000-0000-000000000000"),
        tp("junk-2", 1, "web", cookie_id="ck-junk", email="NULL"),
        # 6. an anonymous visitor who will log in later (run 2), and a customer seen on an app
        tp("late-1", 0, "web", cookie_id="ck-late"),
        tp("late-2", 3, "web", cookie_id="ck-late"),
        tp("late-cust", 2, "app", customer_id="C-LATE", device_id="dev-late"),
        # 7. two records of one person that a later event connects: customer + anonymous phone ticket
        tp("m-shop", 1, "transactions", customer_id="C-MERGE", email="merge@x.example"),
        tp("m-ticket", 0, "support", phone="+1 212 555 0100", email="other@x.example"),
        # 8. a customer and an employee record of one person, not yet connected (the customer is older)
        tp("q-shop", 0, "app", customer_id="C-Q", email="q@x.example"),
        tp("q-staff", 2, "app", "employee", employee_id="E-Q", device_id="dev-q"),
    ]
    return events


def crowd() -> list[dict]:
    """A kiosk device used by 10,000 customers, and a shared inbox typed by 2,000 anonymous visitors."""
    events = [tp(f"kiosk-{i}", (i % 20) / 2, "app", customer_id=f"C-K{i:05d}", device_id="kiosk-lon-01") for i in range(CROWD)]
    events += [tp(f"inbox-{i}", (i % 20) / 2, "web", cookie_id=f"ck-inbox-{i:05d}", email="info@shared.example")
               for i in range(INBOX)]
    return events


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("identity")
    events = small_world() + crowd()
    out, counts = run_identity(tmp, events, config=IdentityConfig(max_rounds=3), name="first")
    return events, out, counts


def test_cross_channel_stitching_with_normalized_identifiers(first):
    _, out, _ = first
    persons = persons_by_event(out["touchpoints"])
    alice = {persons[e] for e in ("a-app", "a-web-anon", "a-support", "a-tx")}
    assert len(alice) == 1 and None not in alice
    # "Alice@X.com " and "alice@x.com" are one identifier; both phone spellings too
    emails = {r["id_hash"] for r in out["identity_map"] if r["kind"] == "email" and r["person_id"] in alice}
    assert emails == {h("email", "alice@x.com")}
    assert person_of(out, "phone", "+442079460958") in alice


def test_only_keyed_hashes_are_stored(first):
    _, out, _ = first
    text = repr(out).lower()
    for clear in ("alice@x.com", "c-alice", "442079460958", "dev-alice", "info@shared.example", "kiosk-lon"):
        assert clear not in text


def test_kiosk_shared_by_ten_thousand_customers_leaves_ten_thousand_persons(first):
    _, out, counts = first
    persons = persons_by_event(out["touchpoints"])
    assert len({persons[f"kiosk-{i}"] for i in range(CROWD)}) == CROWD
    assert len({persons[f"inbox-{i}"] for i in range(INBOX)}) == INBOX
    quarantine = {r["id_hash"]: r for r in out["identity_quarantine"]}
    kiosk = quarantine[h("device_id", "kiosk-lon-01")]
    assert kiosk["reason"] == "degree_cap" and kiosk["degree"] == CROWD and kiosk["cap"] == 50
    inbox = quarantine[h("email", "info@shared.example")]
    assert inbox["reason"] == "degree_cap" and inbox["degree"] == INBOX
    assert person_of(out, "device_id", "kiosk-lon-01") is None
    assert counts["identity.quarantined.degree_cap"] == 2


def test_two_customer_ids_never_merge_through_weak_identifiers(first):
    _, out, counts = first
    persons = persons_by_event(out["touchpoints"])
    # directly: the household device is quarantined, its anonymous event has no person
    assert persons["hh-1"] != persons["hh-2"]
    family = {r["id_hash"]: r for r in out["identity_quarantine"]}[h("device_id", "dev-family")]
    assert family["reason"] == "conflicting_unique_ids" and family["conflicting_kinds"] == ["customer_id"]
    assert persons["hh-anon"] is None
    # indirectly: the chain is cut where the younger link would join two customers
    assert persons["x-login"] != persons["y-login"]
    assert persons["x-form"] == persons["x-login"]  # the older link keeps the cookie with C-X
    assert persons["y-app"] == persons["y-login"]
    assert counts["identity.conflicts.refused_links"] == 1
    # no person anywhere holds two customer ids
    customers = {}
    for row in out["identity_map"]:
        if row["kind"] == "customer_id" and row["person_id"]:
            customers.setdefault(row["person_id"], set()).add(row["id_hash"])
    assert max(len(c) for c in customers.values()) == 1


def test_customer_and_employee_are_one_person_with_two_roles(first):
    _, out, _ = first
    rows = {t["event_id"]: t for t in out["touchpoints"]}
    assert rows["r-shop"]["person_id"] == rows["r-staff"]["person_id"] == rows["r-ticket"]["person_id"]
    assert (rows["r-shop"]["role"], rows["r-staff"]["role"], rows["r-ticket"]["role"]) == ("customer", "employee", "employee")
    assert person_of(out, "customer_id", "C-ROLE") == person_of(out, "employee_id", "E-ROLE")


def test_unattributable_touchpoints_are_kept_without_person_and_counted(first):
    events, out, counts = first
    persons = persons_by_event(out["touchpoints"])
    assert len(out["touchpoints"]) == len(events)  # nothing dropped
    assert persons["junk-1"] is None and persons["junk-2"] is not None  # the cookie still identifies junk-2
    assert counts["app.unattributed"] == 2  # junk-1 and hh-anon
    reasons = {r["id_hash"]: r["reason"] for r in out["identity_quarantine"]}
    assert reasons[h("device_id", "00000000-0000-0000-0000-000000000000")] == "blocklisted"
    assert reasons[h("email", "null")] == "blocklisted"


def test_person_ids_are_stable_under_shuffling_duplicates_and_unrelated_additions(first, tmp_path):
    events, out, _ = first
    small = small_world()
    shuffled = small + small[:7] + [tp("new-person", 1, "app", customer_id="C-NEW", device_id="dev-new")]
    random.Random(4).shuffle(shuffled)
    again, _ = run_identity(tmp_path, shuffled, config=IdentityConfig(max_rounds=3), name="again")
    before = persons_by_event(out["touchpoints"])
    after = persons_by_event(again["touchpoints"])
    assert {e: after[e] for e in before if e in after} == {e: before[e] for e in after if e in before}
    new = after["new-person"]
    assert new not in set(before.values())
    # derived from the strongest identifier: p_ + 20 hex, never the clear value
    assert new.startswith("p_") and len(new) == 22


def without_crowd(state: dict) -> dict:
    crowd_events = crowd()
    ids = {i["id_hash"] for e in crowd_events for i in e["identifiers"]}
    events = {e["event_id"] for e in crowd_events}
    return {
        "identity_map": [r for r in state["identity_map"] if r["id_hash"] not in ids],
        "identity_links": [r for r in state["identity_links"] if r["id_hash"] not in ids and r["linked_hash"] not in ids],
        "person_merges": state.get("person_merges", []),
        "history": [t for t in state["history"] if t["event_id"] not in events],
    }


@pytest.fixture(scope="module")
def second(first, tmp_path_factory):
    """Run 2 on top of run 1 (the crowd left out of the carried state to keep the run small)."""
    events, out, _ = first
    state = without_crowd(carry({}, out))
    later = [
        tp("late-login", 5, "web", cookie_id="ck-late", customer_id="C-LATE"),  # links the cookie late
        tp("m-call", 6, "support", phone="+1 (212) 555-0100", customer_id="C-MERGE"),  # joins the ticket's person
        tp("a-again", 6, "app", customer_id="C-ALICE", device_id="dev-alice"),
        tp("q-link", 5, "support", "employee", employee_id="E-Q", email="Q@X.example"),  # connects C-Q and E-Q
    ]
    out2, counts2 = run_identity(tmp_path_factory.mktemp("identity2"), later, state=state,
                                 context=ctx("2026-11-07", "run-2"), config=IdentityConfig(max_rounds=3), name="second")
    return out, out2, counts2


def test_late_login_reattributes_the_anonymous_history_to_the_customer(second):
    out, out2, counts = second
    before = persons_by_event(out["touchpoints"])
    customer = before["late-cust"]
    anonymous = before["late-1"]
    assert anonymous != customer
    after = persons_by_event(out2["touchpoints"])
    # the customer keeps their id; the cookie's earlier touchpoints are rewritten to it
    assert after["late-login"] == customer
    assert after["late-1"] == customer and after["late-2"] == customer
    assert person_of(out2, "cookie_id", "ck-late") == customer
    merges = {m["old_person_id"]: m for m in out2["person_merges"]}
    assert merges[anonymous]["new_person_id"] == customer and merges[anonymous]["run_id"] == "run-2"
    scopes = {s["person_id"]: s["from_date"] for s in out2["_recompute_scope"]}
    assert scopes[anonymous] == 0  # its derived rows disappear
    assert scopes[customer] == 20727  # recomputed from the first re-attributed day (2026-10-01)
    assert counts["identity.reattributed"] >= 3


def test_merge_keeps_the_identified_person_and_rewrites_only_what_changed(second):
    out, out2, _ = second
    before = persons_by_event(out["touchpoints"])
    after = persons_by_event(out2["touchpoints"])
    assert before["m-ticket"] != before["m-shop"]
    assert after["m-call"] == before["m-shop"]  # the customer's id survives
    assert after["m-ticket"] == before["m-shop"]  # the ticket's history is re-attributed
    assert "m-shop" not in after  # the customer's own history did not change: not rewritten
    merges = {m["old_person_id"]: m["new_person_id"] for m in out2["person_merges"]}
    assert merges == {before["m-ticket"]: before["m-shop"], before["late-1"]: before["late-cust"],
                      before["q-staff"]: before["q-shop"]}
    # untouched persons' history is not rewritten; identity_map rows only where something changed
    assert "a-app" not in after and "hh-1" not in after
    changed = {r["id_hash"] for r in out2["identity_map"]}
    assert h("customer_id", "C-HOME-1") not in changed
    assert h("customer_id", "C-ALICE") in changed  # last_seen moved


def test_oldest_identified_person_survives_when_two_known_persons_merge(second):
    out, out2, _ = second
    before = persons_by_event(out["touchpoints"])
    older, younger = before["q-shop"], before["q-staff"]
    assert older != younger
    after = persons_by_event(out2["touchpoints"])
    assert after["q-link"] == after["q-staff"] == older
    merge = {m["old_person_id"]: m for m in out2["person_merges"]}[younger]
    assert merge == {"old_person_id": younger, "new_person_id": older, "merged_into": older, "run_id": "run-2",
                     "logical_date": 20764}
    assert person_of(out2, "employee_id", "E-Q") == older
