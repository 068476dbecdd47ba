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


# -- extensions for source adapters -----------------------------------------------------------
EXTERNAL = {"type": "record", "name": "Ext", "fields": [
    {"name": "id", "type": "long"},
    {"name": "props", "type": ["null", {"type": "string", "logicalType": "json"}], "default": None},
    {"name": "device", "type": ["null", {"type": "record", "name": "Dev", "fields": [
        {"name": "os", "type": ["null", "string"], "default": None}]}], "default": None},
    {"name": "items", "type": {"type": "array", "items": {"type": "record", "name": "Item", "fields": [
        {"name": "sku", "type": "string"}]}}, "default": []},
]}


def test_json_fields_take_any_value_as_it_is():
    from touchline.transforms.validate import Conformer

    conform = Conformer(EXTERNAL)
    for value in ({"a": {"b": [1, 2]}}, [1, "x"], "text", 3.5, True):
        assert conform({"id": 1, "props": value})[0]["props"] == value


def test_int_strings_are_accepted_only_when_asked():
    from touchline.transforms.errors import TouchpointError
    from touchline.transforms.validate import Conformer

    assert Conformer(EXTERNAL, int_strings=True)({"id": "1790841600000000"})[0]["id"] == 1790841600000000
    assert Conformer(EXTERNAL, int_strings=True)({"id": "-5"})[0]["id"] == -5
    with pytest.raises(TouchpointError) as err:
        Conformer(EXTERNAL, int_strings=True)({"id": "12abc"})
    assert err.value.reason == "wrong_type"
    with pytest.raises(TouchpointError):
        Conformer(EXTERNAL)({"id": "12"})


def test_unknown_fields_of_nested_records_are_returned_by_dotted_path():
    from touchline.transforms.validate import Conformer

    conform = Conformer(EXTERNAL)
    record, unknown = conform({"id": 1, "device": {"os": "iOS", "vendor": "Apple"},
                               "items": [{"sku": "a"}, {"sku": "b", "coupon": "X1"}], "extra": 7})
    assert record["device"] == {"os": "iOS"} and record["items"] == [{"sku": "a"}, {"sku": "b"}]
    assert unknown == {"extra": 7, "device.vendor": "Apple", "items[1].coupon": "X1"}
    assert conform({"id": 2}) == ({"id": 2, "props": None, "device": None, "items": []}, {})  # nothing carried over
    with pytest.raises(Exception):
        conform({"id": 3, "device": {"vendor": "x"}, "items": "nope"})
    assert conform({"id": 4})[1] == {}  # a failed record leaves nothing behind


def test_redactor_field_tokenizes_values_by_field_name():
    from touchline.transforms.errors import Redactor
    from touchline.transforms.identifiers import DEMO_KEY, Hasher

    r = Redactor(Hasher(DEMO_KEY))
    assert r.field("traits.phone", "555 0100 22").startswith("<phone:")
    assert r.field("billing_details.email", "A@B.example").startswith("<email:")
    assert r.field("email_verified", "true") == "true"   # not an address
    assert r.field("mobile_os", "iOS") == "iOS"          # no digits to hide
    assert r.field("note", "call +44 20 7946 0958").startswith("call <phone:")
