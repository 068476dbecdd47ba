"""Attribution: the strongest usable identifier decides; history is re-emitted only when it moved."""

from touchline.transforms.identity.attribute import CURRENT, HISTORY, NO_IDENTIFIER, _Key, _packed, attribute
from touchline.transforms.packing import unpack

from .identity_world import h, tp


def keyed(touchpoint, origin=CURRENT, excluded=()):
    fn = _Key(origin)
    fn.setup()
    # the touchpoint travels packed (as bytes) from keying to the join: unpack it to compare
    return [(key, (tag, unpack(blob))) for key, (tag, blob) in fn.process(_packed(touchpoint), list(excluded))]


def test_key_is_the_strongest_identifier_that_is_not_quarantined():
    event = tp("e", 0, "app", customer_id="C1", device_id="kiosk")
    assert keyed(event) == [(h("customer_id", "C1"), (CURRENT, event))]
    assert keyed(event, excluded=[h("customer_id", "C1")]) == [(h("device_id", "kiosk"), (CURRENT, event))]
    # unattributable: a key of its own that is never an identifier hash (it meets no person in the join)
    (out,) = keyed(event, excluded=[h("customer_id", "C1"), h("device_id", "kiosk")])
    assert out == (NO_IDENTIFIER + "e", (CURRENT, event))


def test_current_touchpoints_get_their_person_history_only_when_it_changed():
    event = tp("e", 0, "web", role="employee", employee_id="E1")
    (now,) = attribute(CURRENT, event, "p_1")
    assert now["person_id"] == "p_1" and now["role"] == "employee" and now["event_id"] == "e"
    assert list(attribute(HISTORY, {**event, "person_id": "p_1"}, "p_1")) == []
    (moved,) = attribute(HISTORY, {**event, "person_id": "p_old"}, "p_1")
    assert moved.tag == HISTORY and moved.value == ("e", ({**event, "person_id": "p_1"}, "p_old"))
