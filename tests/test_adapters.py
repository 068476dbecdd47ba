"""Source adapters on fixtures written from the public format specs (Segment tracking spec, GA4
BigQuery export, Zendesk-style ticket audits, Stripe-shaped charges/refunds): mapping tables,
identifiers, preserved unknown fields, PII, dead-letter reasons, and per-source accounting through
`touchline batch`."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
from decimal import Decimal

import apache_beam as beam
import fastavro
import pytest
from apache_beam.testing.util import assert_that, equal_to

from touchline import schemas
from touchline.transforms.parse import DEAD_LETTERS, TOUCHPOINTS, ParseTouchpoints
from touchline.transforms.validate import Conformer

from .conftest import beam_pipeline, repo_root

FIXTURES = os.path.join(repo_root(), "tests", "fixtures", "adapters")


def lines(adapter: str, kind: str) -> list[bytes]:
    with open(os.path.join(FIXTURES, adapter, f"{kind}.jsonl"), "rb") as fh:
        return fh.read().split(b"\n")[:-1]


def reasons(adapter: str) -> list[str]:
    with open(os.path.join(FIXTURES, adapter, "bad.reasons"), encoding="utf-8") as fh:
        return [r.strip() for r in fh if r.strip()]


# expected (event_id suffix, channel, event_type, identifier kinds) per good line, in file order
EXPECTED = {
    "segment": [
        ("ajs-page-0001", "web", "page_view", {"cookie_id"}),
        ("ajs-identify-0002", "web", "identify", {"customer_id", "cookie_id", "email", "phone"}),
        ("ajs-track-0003", "web", "search", {"customer_id", "cookie_id"}),
        ("ajs-track-0003", "web", "search", {"customer_id", "cookie_id"}),  # a retry: same content
        ("ajs-track-0004", "web", "checkout_started", {"customer_id", "cookie_id"}),
        ("ajs-track-0005", "web", "video_played", {"customer_id", "cookie_id"}),
        ("ajs-track-0006", "web", "order_placed", {"customer_id", "cookie_id", "email"}),
        ("ios-screen-0007", "app", "screen_view", {"customer_id", "device_id"}),
        ("ios-track-0008", "app", "app_crash", {"customer_id", "device_id"}),
        ("ajs-track-0009", "web", "survey_response", {"customer_id", "cookie_id"}),
        ("ajs-alias-0010", "web", "identify", {"customer_id", "cookie_id"}),
        ("ajs-group-0011", "web", "group", {"customer_id", "cookie_id"}),
    ],
    "ga4": [
        (None, "web", "page_view", {"cookie_id"}),
        (None, "web", "login", {"customer_id", "cookie_id"}),
        (None, "web", "checkout_started", {"customer_id", "cookie_id"}),
        (None, "web", "order_placed", {"customer_id", "cookie_id"}),
        (None, "web", "scroll", {"customer_id", "cookie_id"}),
        (None, "web", "scroll", {"customer_id", "cookie_id"}),
        (None, "app", "app_open", {"customer_id", "device_id"}),
        (None, "app", "screen_view", {"customer_id", "device_id"}),
        (None, "app", "app_crash", {"customer_id", "device_id"}),
        (None, "app", "app_exception", {"device_id"}),
        (None, "app", "refund_issued", {"customer_id", "device_id"}),
    ],
    "helpdesk": [
        ("4711:90001", "support", "ticket_opened", {"email", "phone", "customer_id"}),
        ("4711:90002", "support", "agent_response", {"email", "customer_id"}),
        ("4711:90003", "support", "agent_response", {"email", "customer_id"}),
        ("4711:90004", "support", "customer_contact", {"email", "customer_id"}),
        ("4711:90005", "support", "ticket_resolved", {"email", "customer_id"}),
        ("4711:90006", "support", "survey_response", {"email", "customer_id"}),
        ("4711:90007", "support", "ticket_closed", {"email", "customer_id"}),
        ("4712:91001", "support", "ticket_opened", {"phone"}),
        ("4712:91002", "support", "ticket_on_hold", {"phone"}),
        ("4712:91003", "support", "ticket_updated", {"phone"}),
        ("4712:91004", "support", "ticket_closed", {"phone"}),
        ("4713:92001", "support", "ticket_reopened", {"email", "customer_id"}),
        ("4713:92002", "support", "ticket_updated", {"email", "customer_id"}),
    ],
    "payments": [
        ("ch_3Q0001:succeeded", "transactions", "payment_succeeded", {"customer_id", "email", "phone", "card_fingerprint"}),
        ("ch_3Q0001:succeeded", "transactions", "payment_succeeded", {"customer_id", "email", "phone", "card_fingerprint"}),
        ("ch_3Q0002:failed", "transactions", "payment_declined", {"customer_id", "email", "card_fingerprint"}),
        ("ch_3Q0003:pending", "transactions", "payment_pending", {"email"}),
        ("ch_3Q0004:succeeded", "transactions", "payment_succeeded", {"email", "card_fingerprint"}),
        ("re_3Q0001:succeeded", "transactions", "refund_issued", {"customer_id", "email", "card_fingerprint"}),
        ("re_3Q0002:canceled", "transactions", "refund_failed", set()),
    ],
}
#: attributes that must be kept (known and unknown fields of the formats), per adapter
KEPT = {
    "segment": {"segment:ajs-page-0001": {"context.campaign.source": "news", "url": "https://shop.example/pricing?utm_source=news",
                                          "integrations.All": "true", "segment_channel": "browser", "version": "2"},
                "segment:ios-screen-0007": {"screen": "Order Status", "platform": "ios", "app_version": "5.2.0"}},
    "helpdesk": {"helpdesk:4711:90002": {"events[2].subject": "Re: crash", "contact_method": "web_form"},
                 "helpdesk:4712:91003": {"change.tags": '["billing", "refund", "finance"]'},
                 "helpdesk:4711:90007": {"resolution": "resolved"}, "helpdesk:4712:91004": {"resolution": "unresolved"}},
    "payments": {"payments:ch_3Q0002:failed": {"decline_reason": "insufficient_funds", "failure_code": "card_declined"},
                 "payments:ch_3Q0001:succeeded": {"customer": "cus_Q0001", "description": "Order O-5001",
                                                  "outcome.risk_score": "32"}},
    "ga4": {},
}
CLEAR_PII = ["alice@example.com", "Alice@Example.com", "kenji@example.jp", "carol@example.net", "7946 0958", "555-0100",
             "555 0100", "Alice Example", "1 Example Road", "203.0.113.9", "SW1A 1AA", "4242"]


@pytest.mark.parametrize("adapter", sorted(EXPECTED))
def test_adapter_maps_good_records_and_dead_letters_bad_ones(adapter, ctx):
    good, bad = lines(adapter, "good"), lines(adapter, "bad")
    raw = [(f"{adapter}/good.jsonl@{i}", p, None) for i, p in enumerate(good)]
    raw += [(f"{adapter}/bad.jsonl@{i}", p, None) for i, p in enumerate(bad)]
    expected = EXPECTED[adapter]

    def check_touchpoints(tps):
        by_source = {tp["source"]: tp for tp in tps}
        assert len(tps) == len(good)
        for i, (suffix, channel, event_type, kinds) in enumerate(expected):
            tp = by_source[f"{adapter}/good.jsonl@{i}"]
            assert (tp["channel"], tp["event_type"], tp["origin"]) == (channel, event_type, adapter), (i, tp)
            assert {x["kind"] for x in tp["identifiers"]} == kinds, (i, tp["identifiers"])
            assert tp["event_id"].startswith(f"{adapter}:") and (suffix is None or tp["event_id"] == f"{adapter}:{suffix}")
        by_id = {tp["event_id"]: tp for tp in tps}
        for event_id, attributes in KEPT[adapter].items():
            for key, value in attributes.items():
                assert by_id[event_id]["attributes"].get(key) == value, (event_id, key, by_id[event_id]["attributes"])
        text = json.dumps(tps, default=str)
        assert not [p for p in CLEAR_PII if p in text]

    def check_dead_letters(dls):
        got = sorted((d["source"], d["reason"]) for d in dls)
        assert got == sorted((f"{adapter}/bad.jsonl@{i}", r) for i, r in enumerate(reasons(adapter)))
        assert all(d["channel"] == adapter for d in dls)
        assert not [p for p in CLEAR_PII if p in json.dumps(dls)]

    with beam_pipeline() as p:
        out = p | beam.Create(raw) | ParseTouchpoints(adapter, ctx)
        assert_that(out[TOUCHPOINTS], check_touchpoints, label="Touchpoints")
        assert_that(out[DEAD_LETTERS], check_dead_letters, label="DeadLetters")


def test_adapter_values_in_detail(ctx):
    from touchline.transforms.contract import run_parse
    from touchline.transforms.parse import ParseFn

    def parse(adapter):
        return {tp["event_id"]: tp for kind, tp in run_parse(ParseFn(adapter, ctx), lines(adapter, "good"))}

    seg = parse("segment")
    survey = seg["segment:ajs-track-0009"]
    assert (survey["survey_kind"], survey["survey_score"]) == ("nps", 9)
    assert seg["segment:ajs-page-0001"]["event_time"] == 1_791_190_800_000_000  # 2026-10-05T09:00:00Z
    assert seg["segment:ajs-identify-0002"]["attributes"]["traits.name"].startswith("<pii:")
    assert seg["segment:ajs-identify-0002"]["attributes"]["context.ip"].startswith("<pii:")
    assert "traits.email" not in seg["segment:ajs-identify-0002"]["attributes"]  # identifiers are not attributes
    assert seg["segment:ajs-track-0004"]["order_id"] == "O-5001"
    ga4 = list(parse("ga4").values())
    purchase = next(tp for tp in ga4 if tp["event_type"] == "order_placed")
    assert (purchase["amount"], purchase["currency"], purchase["order_id"]) == (Decimal("59.90"), "EUR", "T-5001")
    page = next(tp for tp in ga4 if tp["event_type"] == "page_view")
    assert page["session_id"] == "1234567890.1791190000:1791190790"
    assert page["attributes"]["privacy_info.analytics_storage"] == "Yes"      # unknown column, kept
    assert page["attributes"]["device.time_zone_offset_seconds"] == "3600"    # unknown nested field, kept
    assert page["attributes"]["geo.city"] == "London" and page["attributes"]["engagement_time_msec"] == "1200"
    scroll = next(tp for tp in ga4 if tp["event_type"] == "scroll")
    assert "<email:" in scroll["attributes"]["page_location"] and "alice@" not in scroll["attributes"]["page_location"]
    desk = parse("helpdesk")
    csat = desk["helpdesk:4711:90006"]
    assert (csat["survey_kind"], csat["survey_score"], csat["ticket_id"]) == ("csat", 5, "4711")
    pay = parse("payments")
    assert (pay["payments:ch_3Q0004:succeeded"]["amount"], pay["payments:ch_3Q0004:succeeded"]["currency"]) == (Decimal("5000.00"), "JPY")
    assert pay["payments:ch_3Q0001:succeeded"]["amount"] == Decimal("59.90")
    assert pay["payments:re_3Q0001:succeeded"]["order_id"] == "O-5001"


def test_ga4_rows_get_the_same_event_id_from_a_json_extract_and_an_avro_extract(ctx, tmp_path):
    """BigQuery's JSON extracts write INT64 as strings; Avro extracts as longs: same row, same id."""
    from touchline.transforms.contract import run_parse
    from touchline.transforms.parse import ParseFn
    from touchline.transforms.sources import _UNBOUNDED, read_range

    schema = schemas.load("raw_ga4_event")
    known = {f["name"] for f in schema["fields"]}
    conform = Conformer(schema, int_strings=True)
    rows = []
    for line in lines("ga4", "good"):
        # the columns of the raw schema (an Avro file written with it cannot carry others)
        datum = {k: v for k, v in json.loads(line).items() if k in known}
        if "device" in datum:
            datum["device"] = {k: v for k, v in datum["device"].items() if k != "time_zone_offset_seconds"}
        rows.append(datum)
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with open(tmp_path / "rows.avro", "wb") as fh:
        fastavro.writer(fh, fastavro.parse_schema(schema), [conform(r)[0] for r in rows])
    ids = {}
    for name in ("rows.jsonl", "rows.avro"):
        records = list(read_range((str(tmp_path / name), 0, _UNBOUNDED)))
        out = run_parse(ParseFn("ga4", ctx), [payload for _, payload, _ in records])
        assert all(kind == "touchpoint" for kind, _ in out), out
        ids[name] = [tp["event_id"] for _, tp in out]
    assert ids["rows.jsonl"] == ids["rows.avro"] and len(set(ids["rows.avro"])) == len(rows) - 1  # one exact duplicate


def test_optional_sources_are_read_under_input_only_when_their_folder_has_files(tmp_path):
    from touchline.pipelines.options import BatchOptions, ConfigError, parse_pipeline_args, resolve_inputs

    for channel in ("app", "web", "support", "transactions"):
        (tmp_path / channel).mkdir()
        (tmp_path / channel / "part.jsonl").write_text("{}\n")
    opts = parse_pipeline_args(["--input", str(tmp_path)], "touchline batch").view_as(BatchOptions)
    assert sorted(resolve_inputs(opts)) == ["app", "support", "transactions", "web"]
    (tmp_path / "segment").mkdir()
    (tmp_path / "segment" / "part.jsonl").write_text("{}\n")
    assert "segment" in resolve_inputs(opts) and "ga4" not in resolve_inputs(opts)
    named = parse_pipeline_args(["--input", str(tmp_path), "--channels", "ga4"], "touchline batch")
    from touchline.pipelines.options import _matched_files

    with pytest.raises(ConfigError, match="no ga4 input files match"):
        _matched_files(resolve_inputs(named.view_as(BatchOptions)))


def test_every_adapter_accounts_for_every_record_through_touchline_batch(tmp_path):
    root = tmp_path / "input"
    for adapter in EXPECTED:
        (root / adapter).mkdir(parents=True)
        for kind in ("good", "bad"):
            shutil.copy(os.path.join(FIXTURES, adapter, f"{kind}.jsonl"), root / adapter / f"{kind}.jsonl")
    warehouse = tmp_path / "w.duckdb"
    result = subprocess.run(
        [sys.executable, "-m", "touchline.pipelines.cli", "--quiet", "batch", "--input", str(root),
         "--channels", ",".join(EXPECTED), "--warehouse", str(warehouse), "--hash_key_source", "demo",
         "--logical_date", "2026-10-31"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    duplicates = {"segment": 1, "ga4": 1, "helpdesk": 0, "payments": 1}
    for adapter in EXPECTED:
        read = len(lines(adapter, "good")) + len(lines(adapter, "bad"))
        tps = len(lines(adapter, "good")) - duplicates[adapter]
        row = re.search(rf"^{adapter}\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)$", result.stdout, re.M)
        assert row and tuple(map(int, row.groups())) == (read, tps, duplicates[adapter], len(reasons(adapter))), result.stdout
    import duckdb

    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        per_origin = dict(con.sql("SELECT origin, COUNT(*) FROM touchpoints GROUP BY origin").fetchall())
        assert per_origin == {a: len(lines(a, "good")) - duplicates[a] for a in EXPECTED}
        channels = dict(con.sql("SELECT channel, COUNT(*) FROM touchpoints GROUP BY channel").fetchall())
        assert set(channels) == {"web", "app", "support", "transactions"}
        dead = dict(con.sql("SELECT channel, COUNT(*) FROM dead_letters GROUP BY channel").fetchall())
        assert dead == {a: len(reasons(a)) for a in EXPECTED}
        dump = json.dumps(con.sql("SELECT * FROM touchpoints").fetchall() + con.sql("SELECT * FROM dead_letters").fetchall(),
                          default=str)
        # hex digests (id hashes, run and dead-letter ids: the run id depends on the files' mtimes)
        # can contain "4242" by chance; the clear text looked for is never hex of that length
        assert not [p for p in CLEAR_PII if p in re.sub(r"[0-9a-f]{16,}", "#", dump)]
    finally:
        con.close()
