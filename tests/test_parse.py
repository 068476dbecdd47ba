import json

import apache_beam as beam
from apache_beam.testing.util import assert_that, equal_to

from touchline.transforms.parse import DEAD_LETTERS, TOUCHPOINTS, ParseTouchpoints

from .conftest import beam_pipeline


def line(**rec):
    return json.dumps(rec).encode()


WEB_OK = dict(event_id="w1", occurred_at="2026-10-01T10:00:00+02:00", event_type="login", cookie_id="ck-1",
              customer_id="C00000001", email=" Alice@Example.com ", url="https://shop.example/login?ref=a@b.com")

CASES = [
    (line(**WEB_OK), None),
    (b"\xff\xfe{}", "invalid_encoding"),
    (b"   ", "empty_record"),
    (b'{"event_id": "w2", ', "invalid_json"),
    (b"[1, 2]", "not_an_object"),
    (line(**{**WEB_OK, "event_id": "w3", "cookie_id": None}), "missing_field"),
    (line(**{**WEB_OK, "event_id": "w4", "http_status": "five hundred"}), "wrong_type"),
    (line(**{**WEB_OK, "event_id": "w5", "event_type": "teleport"}), "unknown_event_type"),
    (line(**{**WEB_OK, "event_id": "w6", "occurred_at": "2026-10-01T10:00:00"}), "invalid_timestamp"),
    (line(**{**WEB_OK, "event_id": "w7", "occurred_at": "01/10/2026"}), "invalid_timestamp"),
    (line(**{**WEB_OK, "event_id": "w8", "event_type": "survey_response", "survey": {"kind": "nps", "score": 11}}), "invalid_value"),
    (line(**{**WEB_OK, "event_id": "w9", "event_type": "survey_response"}), "invalid_value"),
]


def test_every_record_is_a_touchpoint_or_a_dead_letter_with_its_reason(ctx):
    raw = [(f"web.jsonl@{i}", payload, None) for i, (payload, _) in enumerate(CASES)]
    raw.append(("app.avro@99", b"\x00\x01", ("corrupt_avro", "error", "bad block")))
    with beam_pipeline() as p:
        out = p | beam.Create(raw) | ParseTouchpoints("web", ctx)
        assert_that(out[TOUCHPOINTS] | "Ids" >> beam.Map(lambda t: t["event_id"]), equal_to(["w1"]), label="Good")
        expected = [(f"web.jsonl@{i}", reason) for i, (_, reason) in enumerate(CASES) if reason]
        expected.append(("app.avro@99", "corrupt_avro"))
        assert_that(out[DEAD_LETTERS] | "Reasons" >> beam.Map(lambda d: (d["source"], d["reason"])),
                    equal_to(expected), label="Dead")


def test_touchpoint_is_canonical_and_pseudonymized(ctx, hasher):
    with beam_pipeline() as p:
        out = p | beam.Create([("f@0", line(**WEB_OK, experiment="B"), None)]) | ParseTouchpoints("web", ctx)

        def check(tps):
            (tp,) = tps
            assert tp["event_time"] == 1_790_841_600_000_000  # 08:00 UTC
            assert tp["event_date"] == 20727
            assert tp["role"] == "customer" and tp["channel"] == "web" and tp["person_id"] is None
            kinds = {i["kind"]: i["id_hash"] for i in tp["identifiers"]}
            assert kinds["email"] == hasher.hash("email", "alice@example.com")
            assert set(kinds) == {"customer_id", "email", "cookie_id"}
            assert tp["attributes"]["experiment"] == "B"  # unknown fields are preserved
            assert "a@b.com" not in json.dumps(tp) and "Alice" not in json.dumps(tp)

        assert_that(out[TOUCHPOINTS], check)


def test_roles_follow_the_unique_id_the_event_carries(ctx):
    app = lambda **kw: line(event_id=kw.pop("event_id"), occurred_at="2026-10-01T10:00:00Z", event_type="app_open",  # noqa: E731
                            device_id="d", **kw)
    raw = [("a@0", app(event_id="a1", employee_id="E000001"), None),
           ("a@1", app(event_id="a2", partner_id="P0000001"), None),
           ("a@2", app(event_id="a3", customer_id="C1"), None),
           ("a@3", app(event_id="a4"), None)]
    with beam_pipeline() as p:
        out = p | beam.Create(raw) | ParseTouchpoints("app", ctx)
        assert_that(out[TOUCHPOINTS] | beam.Map(lambda t: (t["event_id"], t["role"])),
                    equal_to([("a1", "employee"), ("a2", "partner"), ("a3", "customer"), ("a4", "customer")]))


def test_transactions_amounts_and_checks(ctx):
    from decimal import Decimal

    tx = dict(event_id="t1", occurred_at="2026-10-01T10:00:00Z", event_type="order_placed", order_id="o1",
              customer_id="C1", amount_minor=1999, currency="EUR", phone="+44 20 7946 0958")
    raw = [("t@0", line(**tx), None), ("t@1", line(**{**tx, "event_id": "t2", "amount_minor": -5}), None),
           ("t@2", line(**{**tx, "event_id": "t3", "currency": "euro"}), None)]
    with beam_pipeline() as p:
        out = p | beam.Create(raw) | ParseTouchpoints("transactions", ctx)
        assert_that(out[TOUCHPOINTS] | beam.Map(lambda t: (t["amount"], t["currency"], t["order_id"])),
                    equal_to([(Decimal("19.99"), "EUR", "o1")]), label="Good")
        assert_that(out[DEAD_LETTERS] | beam.Map(lambda d: (d["event_id"], d["reason"])),
                    equal_to([("t2", "invalid_value"), ("t3", "invalid_value")]), label="Dead")
