"""Stable person ids: derived from the strongest identifier; previous ids survive merges by rule."""

from touchline.transforms.context import RunContext
from touchline.transforms.identity.persons import _repoint, changed, choose_person, derived_person_id, home_of

import datetime as dt


def test_derived_ids_are_stable_and_opaque():
    a = derived_person_id("0123456789abcdef0123456789abcdef")
    assert a == derived_person_id("0123456789abcdef0123456789abcdef") and a.startswith("p_") and len(a) == 22
    assert a != derived_person_id("0123456789abcdef0123456789abcdee")


def test_choose_person():
    strongest_unique, strongest_cookie = (0, "c" * 32), (5, "k" * 32)
    assert choose_person(strongest_unique, []) == derived_person_id("c" * 32)
    # identified candidates: the oldest survives, even if an anonymous one is older still
    cands = [("p_anon", False, 1), ("p_young", True, 9), ("p_old", True, 5)]
    assert choose_person(strongest_unique, cands) == "p_old"
    # only anonymous candidates and now a customer id: the customer's derived id, the cookie merges into it
    assert choose_person(strongest_unique, [("p_anon", False, 1)]) == derived_person_id("c" * 32)
    # anonymous component: the oldest anonymous id survives (ties by id)
    assert choose_person(strongest_cookie, [("p_b", False, 3), ("p_a", False, 3), ("p_c", False, 1)]) == "p_c"


def test_home_of_a_person_is_its_strongest_linked_identifier():
    values = [((5, "k", "L2"), "cookie_id", 10), ((0, "c", "L1"), "customer_id", 20), (None, "device_id", 3)]
    for order in (values, values[::-1]):
        assert home_of(order) == ((0, "c", "L1"), True, 3)
    assert home_of([(None, "email", 4)]) == (None, False, 4)  # vanished


def test_merges_are_repointed_so_one_lookup_resolves_any_old_id():
    ctx = RunContext("run-9", dt.date(2026, 11, 2), "demo")
    earlier = {"old_person_id": "p_r", "new_person_id": "p_q", "merged_into": "p_q", "run_id": "run-1", "logical_date": 1}
    rows = list(_repoint(("p_q", {"now": ["p_p"], "before": [earlier]}), ctx))
    assert rows == [{"old_person_id": "p_q", "new_person_id": "p_p", "merged_into": "p_p", "run_id": "run-9", "logical_date": 20759},
                    {**earlier, "new_person_id": "p_p"}]
    assert list(_repoint(("p_x", {"now": [], "before": [earlier]}), ctx)) == []


def test_identity_map_rows_are_rewritten_only_when_something_changed():
    row = {"id_hash": "h", "kind": "email", "person_id": "p", "status": "linked", "first_seen": 1, "last_seen": 2,
           "degree": 3, "run_id": "new", "updated_on": 9}
    assert not changed(row, {**row, "run_id": "old", "updated_on": 1})
    assert changed(row, {**row, "last_seen": 1}) and changed(row, None)
