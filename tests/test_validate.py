import pytest

from touchline import schemas
from touchline.transforms.errors import TouchpointError
from touchline.transforms.validate import Conformer

WEB = Conformer(schemas.load("raw_web_event"))


def good(**over):
    rec = {"event_id": "e1", "occurred_at": "2026-10-01T10:00:00Z", "event_type": "page_view",
           "cookie_id": "ck", "url": "https://shop.example/"}
    rec.update(over)
    return rec


def reason(datum):
    with pytest.raises(TouchpointError) as err:
        WEB(datum)
    return err.value.reason, str(err.value)


def test_defaults_filled_and_unknown_fields_returned():
    record, unknown = WEB(good(experiment="B"))
    assert record["customer_id"] is None and record["properties"] == {} and record["survey"] is None
    assert unknown == {"experiment": "B"}


def test_missing_and_null_required_fields():
    rec = good()
    del rec["cookie_id"]
    assert reason(rec)[0] == "missing_field"
    assert reason(good(event_id=None)) == ("missing_field", "event_id: required field is null")


def test_wrong_types_are_named():
    assert reason(good(http_status="five hundred"))[0] == "wrong_type"
    assert reason(good(event_id=12))[0] == "wrong_type"
    assert reason(good(http_status=True))[0] == "wrong_type"  # bool is not an int
    assert reason(good(event_type="survey_response", survey={"kind": "nps", "score": "9"}))[0] == "wrong_type"
    assert reason(good(properties=["a"]))[0] == "wrong_type"


def test_enum_violations():
    assert reason(good(event_type="teleport"))[0] == "unknown_event_type"
    assert reason(good(event_type="survey_response", survey={"kind": "stars", "score": 3}))[0] == "invalid_value"


def test_nested_record_and_map_are_conformed():
    record, _ = WEB(good(event_type="survey_response", survey={"kind": "nps", "score": 9}, properties={"a": "1", "b": None}))
    assert record["survey"] == {"kind": "nps", "score": 9}
    assert record["properties"] == {"a": "1"}
