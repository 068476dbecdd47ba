"""The sample-data generator: layout, determinism, schema validity, labels, realism, config checks."""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import io
import json
import multiprocessing
import re
import sys
import zlib
from pathlib import Path

import fastavro
import fastavro.validation
import pytest

from touchline import schemas
from touchline.pipelines.sample_data import (
    ALL_REASONS, AVRO_REASONS, CHANNELS, JSONL_REASONS, SCHEMA_NAMES, GenerateConfig, add_arguments,
    config_from_args, generate,
)
from touchline.pipelines.sample_data import writers
from touchline.pipelines.sample_data.people import JUNK_EMAILS, ZERO_DEVICE, roles_of

START = dt.date(2026, 10, 1)
SURVEY_RANGES = {"nps": (0, 10), "csat": (1, 5), "ces": (1, 7)}
UID_FIELDS = ("customer_id", "employee_id", "partner_id")


# ---------------------------------------------------------------------------- helpers
def _all_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _norm_email(v: str) -> str:
    return v.strip().lower()


def _norm_phone(v: str) -> str:
    digits = re.sub(r"\D+", "", v)
    return digits[2:] if digits.startswith("00") else digits


def _jsonl_lines(data: bytes) -> list[bytes]:
    lines = data.split(b"\n")
    assert lines[-1] == b"", "a JSONL file ends with a newline"
    return lines[:-1]


def _avro_blocks(data: bytes):
    """(record count, raw block data) for every block of an Avro container, without decoding."""
    fo = io.BytesIO(data)
    reader = fastavro.reader(fo)
    sync = reader._header["sync"]

    def varint():
        shift = result = 0
        while True:
            b = fo.read(1)[0]
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return (result >> 1) ^ -(result & 1)
            shift += 7

    fo.seek(0)
    header_len = data.index(sync) + 16
    fo.seek(header_len)
    blocks = []
    while fo.tell() < len(data):
        count, size = varint(), varint()
        blocks.append((count, fo.read(size)))
        assert fo.read(16) == sync
    return blocks


class Classifier:
    """A reference for the dead-letter reason of a record (None = valid), independent of transforms/."""

    def __init__(self, channel: str):
        self.schema = schemas.load(SCHEMA_NAMES[channel])
        self.channel = channel

    def line(self, raw: bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return "invalid_encoding"
        if not text.strip():
            return "empty_record"
        try:
            datum = json.loads(text)
        except json.JSONDecodeError:
            return "invalid_json"
        if not isinstance(datum, dict):
            return "not_an_object"
        return self.record(datum)

    def _type(self, t, v, top_enum_reason="invalid_value"):
        if isinstance(t, list):
            return self._type([x for x in t if x != "null"][0], v)
        if t == "string":
            return None if isinstance(v, str) else "wrong_type"
        if t in ("int", "long"):
            return None if isinstance(v, int) and not isinstance(v, bool) else "wrong_type"
        if t["type"] == "enum":
            if not isinstance(v, str):
                return "wrong_type"
            return None if v in t["symbols"] else top_enum_reason
        if t["type"] == "map":
            if not isinstance(v, dict):
                return "wrong_type"
            return None if all(isinstance(x, str) or x is None for x in v.values()) else "wrong_type"
        if t["type"] == "record":
            if not isinstance(v, dict):
                return "wrong_type"
            for f in t["fields"]:
                if v.get(f["name"]) is None:
                    return "missing_field"
                bad = self._type(f["type"], v[f["name"]])
                if bad:
                    return bad
            return None
        raise AssertionError(t)

    def record(self, datum: dict):
        for f in self.schema["fields"]:
            nullable = isinstance(f["type"], list)
            if datum.get(f["name"]) is None and not nullable and "default" not in f:
                return "missing_field"
            if f["name"] in datum and datum[f["name"]] is None and not nullable:
                return "missing_field"
        for f in self.schema["fields"]:
            v = datum.get(f["name"])
            if v is None:
                continue
            bad = self._type(f["type"], v, "unknown_event_type" if f["name"] == "event_type" else "invalid_value")
            if bad:
                return bad
        try:
            ts = dt.datetime.fromisoformat(datum["occurred_at"])
        except ValueError:
            return "invalid_timestamp"
        if ts.tzinfo is None:
            return "invalid_timestamp"
        survey = datum.get("survey")
        if datum["event_type"] == "survey_response" and survey is None:
            return "invalid_value"
        if survey is not None:
            lo, hi = SURVEY_RANGES[survey["kind"]]
            if datum["event_type"] != "survey_response" or not lo <= survey["score"] <= hi:
                return "invalid_value"
        if self.channel == "transactions":
            if datum["amount_minor"] < 0 or not re.fullmatch(r"[A-Z]{3}", datum["currency"]):
                return "invalid_value"
        return None


def _load(root: Path):
    """(manifest, truth rows, persons by id, {(file, index): payload}) where payload is a JSONL line
    (bytes) or an Avro record (dict); a corrupt Avro block is at (file, "block", block index)."""
    manifest = json.loads((root / "manifest.json").read_text())
    truth = [json.loads(line) for line in (root / "truth/records.jsonl").read_text().splitlines()]
    persons = {p["person"]: p for p in map(json.loads, (root / "truth/persons.jsonl").read_text().splitlines())}
    payloads = {}
    for ch, entry in manifest["channels"].items():
        for rel in entry["files"]:
            data = (root / rel).read_bytes()
            if rel.endswith(".jsonl"):
                for i, line in enumerate(_jsonl_lines(data)):
                    payloads[(rel, i)] = line
            elif writers.CORRUPT_FILE in rel:
                schema = schemas.parsed(SCHEMA_NAMES[ch])
                index = 0
                for b, (count, block) in enumerate(_avro_blocks(data)):
                    try:
                        raw = io.BytesIO(zlib.decompress(block, -15))
                    except zlib.error:
                        payloads[(rel, "block", b)] = block  # truth indexes corrupt blocks by block number
                        index += count
                        continue
                    for _ in range(count):
                        payloads[(rel, index)] = fastavro.schemaless_reader(raw, schema)
                        index += 1
            else:
                with open(root / rel, "rb") as fh:
                    for i, rec in enumerate(fastavro.reader(fh, reader_schema=schemas.parsed(SCHEMA_NAMES[ch]))):
                        payloads[(rel, i)] = rec
    return manifest, truth, persons, payloads


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    root = tmp_path_factory.mktemp("sample")
    manifest = generate(GenerateConfig(out_dir=str(root), persons=400, days=30, seed=11, shards=3))
    return root, manifest, *_load(root)[1:]


def _good_items(sample):
    """(channel, file, truth row, record dict) for every parseable record (good/duplicate/conflict)."""
    root, manifest, truth, persons, payloads = sample
    for row in truth:
        if row["status"] == "malformed":
            continue
        payload = payloads[(row["file"], row["index"])]
        rec = json.loads(payload) if isinstance(payload, bytes) else payload
        yield row["channel"], row["file"], row, rec


# ---------------------------------------------------------------------------- layout, counts, determinism
def test_layout_and_manifest_counts(sample):
    root, manifest, truth, persons, payloads = sample
    assert manifest["persons"] == len(persons) == 400
    assert (root / "app/part-00000-of-00003.avro").is_file()
    assert (root / "web/part-00002-of-00003.jsonl").is_file()
    assert (root / "support/part-00001-of-00003.jsonl").is_file()
    assert (root / "transactions/part-00000-of-00003.avro").is_file()
    assert (root / "app/part-corrupt-00000.avro").is_file() and (root / "transactions/part-corrupt-00000.avro").is_file()
    assert not list(root.glob("web/part-corrupt-*")) and not list(root.glob("truth/.*"))

    by_file = collections.Counter(row["file"] for row in truth)
    for ch in CHANNELS:
        entry = manifest["channels"][ch]
        rows = [r for r in truth if r["channel"] == ch]
        status = collections.Counter(r["status"] for r in rows)
        reasons = collections.Counter(r["reason"] for r in rows if r["status"] == "malformed")
        assert entry["input_units"] == len(rows) == sum(entry["input_units_per_file"].values())
        assert entry["input_units"] == entry["good"] + entry["duplicates"] + entry["conflicts"] + entry["malformed_total"]
        assert status == {k: v for k, v in (("good", entry["good"]), ("duplicate", entry["duplicates"]),
                                            ("conflict", entry["conflicts"]), ("malformed", entry["malformed_total"])) if v}
        assert dict(reasons) == entry["malformed"]
        for rel in entry["files"]:
            # truth lines of a file are consecutive, in file order, and as many as the file's input units
            idx = [r["index"] for r in truth if r["file"] == rel]
            assert by_file[rel] == entry["input_units_per_file"][rel]
            data = (root / rel).read_bytes()
            if rel.endswith(".jsonl"):
                assert idx == list(range(len(_jsonl_lines(data))))
            elif writers.CORRUPT_FILE in rel:
                blocks = _avro_blocks(data)
                assert len(blocks) >= 3
                corrupt = [r for r in truth if r["file"] == rel and r["reason"] == "corrupt_avro"]
                assert len(corrupt) == 1 and corrupt[0]["index"] == 1 and corrupt[0]["records"] == blocks[1][0]
                assert sum(c for c, _ in blocks) == len(idx) - 1 + blocks[1][0]
            else:
                with open(root / rel, "rb") as fh:
                    assert idx == list(range(sum(1 for _ in fastavro.reader(fh))))
    totals = manifest["totals"]
    assert totals["input_units"] == len(truth)
    assert totals["malformed_total"] == sum(totals["malformed"].values())
    # rates are roughly what was asked for
    assert 0.012 < totals["malformed_total"] / totals["input_units"] < 0.03
    assert 0.012 < totals["duplicates"] / totals["good"] < 0.03
    assert manifest["config"]["persons"] == 400 and "workers" not in manifest["config"]


def test_same_config_gives_identical_bytes_whatever_the_workers(tmp_path, monkeypatch):
    cfg = dict(persons=45, days=200, seed=3, shards=2)  # 200 days -> 37 persons per block -> 2 blocks
    generate(GenerateConfig(out_dir=str(tmp_path / "a"), workers=1, **cfg))
    generate(GenerateConfig(out_dir=str(tmp_path / "b"), workers=1, **cfg))
    generate(GenerateConfig(out_dir=str(tmp_path / "c"), workers=2, **cfg))  # forked pool
    runner = sys.modules["touchline.pipelines.sample_data.runner"]
    monkeypatch.setattr(runner, "_context", lambda: multiprocessing.get_context("spawn"))
    generate(GenerateConfig(out_dir=str(tmp_path / "d"), workers=3, **cfg))  # spawned pool, more workers than blocks
    a, b, c, d = (_all_files(tmp_path / x) for x in "abcd")
    assert a.keys() == b.keys() == c.keys() == d.keys()
    assert a == b
    assert a == c
    assert a == d
    generate(GenerateConfig(out_dir=str(tmp_path / "e"), workers=1, **{**cfg, "seed": 4}))
    assert _all_files(tmp_path / "e")["web/part-00000-of-00002.jsonl"] != a["web/part-00000-of-00002.jsonl"]


def test_rerun_into_same_folder_replaces_old_output(tmp_path):
    generate(GenerateConfig(out_dir=str(tmp_path), persons=20, days=3, shards=3))
    generate(GenerateConfig(out_dir=str(tmp_path), persons=20, days=3, shards=1, truth=False))
    assert sorted(p.name for p in (tmp_path / "web").iterdir()) == ["part-00000-of-00001.jsonl"]
    assert not (tmp_path / "truth" / "records.jsonl").exists()


def test_compiled_avro_encoder_matches_fastavro(sample):
    root, manifest, truth, persons, payloads = sample
    for ch in ("app", "transactions", "web", "support"):
        recs = [rec for c, _, row, rec in _good_items(sample) if c == ch][:3000]
        if ch in ("web", "support"):  # JSON records: conform to the schema first (drop unknown fields)
            names = {f["name"] for f in schemas.load(SCHEMA_NAMES[ch])["fields"]}
            recs = [{k: v for k, v in r.items() if k in names} for r in recs]
        sync = writers.sync_marker(ch, 1)
        assert writers.avro_blocks(ch, sync, recs) == writers.fastavro_blocks(ch, sync, recs)


@pytest.mark.parametrize("fmt", ["avro", "jsonl"])
def test_single_format_outputs(tmp_path, fmt):
    manifest = generate(GenerateConfig(out_dir=str(tmp_path), persons=150, days=20, seed=5, format=fmt,
                                       shards=1, malformed_rate=0.2))
    _, truth, _, payloads = _load(tmp_path)
    reasons = set(manifest["totals"]["malformed"])
    for ch in CHANNELS:
        assert manifest["channels"][ch]["format"] == fmt
        assert all(f.endswith("." + fmt) for f in manifest["channels"][ch]["files"])
    if fmt == "avro":
        assert reasons == set(AVRO_REASONS) | {"corrupt_avro"}
        assert all(manifest["channels"][ch]["malformed"].get("corrupt_avro") == 1 for ch in CHANNELS)
    else:
        assert reasons == set(JSONL_REASONS)
        # negative amounts and bad currencies only exist in JSONL transactions in this format
        bad_tx = [payloads[(r["file"], r["index"])] for r in truth
                  if r["channel"] == "transactions" and r["reason"] == "invalid_value"]
        assert bad_tx
        for line in bad_tx:
            assert Classifier("transactions").line(line) == "invalid_value"


# ---------------------------------------------------------------------------- validity and labels
def test_avro_files_read_with_the_channel_schemas(sample):
    root = sample[0]
    for ch in ("app", "transactions"):
        for path in sorted((root / ch).glob("part-0*.avro")):
            with open(path, "rb") as fh:
                reader = fastavro.reader(fh)
                assert reader.metadata["avro.codec"] == "deflate"
                assert reader.writer_schema["name"] == "touchline.raw." + schemas.load(SCHEMA_NAMES[ch])["name"]
                assert sum(1 for _ in reader) > 0


def test_corrupt_avro_block_is_the_only_unreadable_one(sample):
    root = sample[0]
    for ch in ("app", "transactions"):
        blocks = _avro_blocks((root / ch / writers.CORRUPT_FILE).read_bytes())
        readable = []
        for count, data in blocks:
            try:
                zlib.decompress(data, -15)
                readable.append(True)
            except zlib.error:
                readable.append(False)
        assert readable == [True, False] + [True] * (len(blocks) - 2)
        with pytest.raises(Exception):
            with open(root / ch / writers.CORRUPT_FILE, "rb") as fh:
                list(fastavro.reader(fh))


def test_every_good_record_validates_and_every_malformed_one_fails_as_labelled(sample):
    root, manifest, truth, persons, payloads = sample
    classifiers = {ch: Classifier(ch) for ch in CHANNELS}
    parsed = {ch: schemas.parsed(SCHEMA_NAMES[ch]) for ch in CHANNELS}
    fields = {ch: schemas.load(SCHEMA_NAMES[ch])["fields"] for ch in CHANNELS}
    seen = collections.Counter()
    for row in truth:
        payload = payloads[(row["file"], row["index"])]
        ch = row["channel"]
        if row["reason"] == "corrupt_avro":
            continue
        got = classifiers[ch].line(payload) if isinstance(payload, bytes) else classifiers[ch].record(payload)
        expected = row["reason"] if row["status"] == "malformed" else None
        assert got == expected, (row, payload)
        seen[expected] += 1
        if expected is None and isinstance(payload, bytes):
            rec = json.loads(payload)
            filled = {f["name"]: rec.get(f["name"], f.get("default")) for f in fields[ch]}
            assert fastavro.validation.validate(filled, parsed[ch], raise_errors=True)
        if row["status"] == "malformed" and row["reason"] not in ("invalid_json", "empty_record", "invalid_encoding", "not_an_object"):
            rec = json.loads(payload) if isinstance(payload, bytes) else payload
            eid = rec.get("event_id")
            assert row["event_id"] == (eid if isinstance(eid, str) else None)
    assert seen[None] > 10_000


def test_every_reason_appears_at_a_few_hundred_persons(sample):
    manifest = sample[1]
    assert set(manifest["totals"]["malformed"]) == set(ALL_REASONS)
    web_support = collections.Counter()
    for ch in ("web", "support"):
        web_support.update(manifest["channels"][ch]["malformed"])
    assert set(web_support) == set(JSONL_REASONS)
    for ch in ("app", "transactions"):
        assert set(manifest["channels"][ch]["malformed"]) == {"invalid_timestamp", "invalid_value", "corrupt_avro"}


def test_malformed_jsonl_lines_still_carry_pii(sample):
    root, manifest, truth, persons, payloads = sample
    lines = [payloads[(r["file"], r["index"])] for r in truth if r["channel"] == "support" and r["status"] == "malformed"]
    assert any(b"@" in line for line in lines)


def test_timestamps_are_varied_valid_iso_with_offsets_and_files_are_not_time_sorted(sample):
    forms = collections.Counter()
    times_by_file = collections.defaultdict(list)
    for ch, rel, row, rec in _good_items(sample):
        ts = rec["occurred_at"]
        parsed = dt.datetime.fromisoformat(ts)
        assert parsed.tzinfo is not None
        assert dt.datetime(2026, 10, 1, tzinfo=dt.timezone.utc) <= parsed < dt.datetime(2026, 10, 31, tzinfo=dt.timezone.utc)
        forms[("ms" if "." in ts else "s", "Z" if ts.endswith("Z") else ts[-6:])] += 1
        times_by_file[rel].append(parsed)
    assert {("s", "Z"), ("ms", "Z")} <= set(forms)
    assert {"+01:00", "+02:00", "-04:00", "-07:00"} <= {off for _, off in forms}
    for rel, times in times_by_file.items():
        if len(times) > 50:
            assert times != sorted(times), rel


def test_duplicates_are_exact_copies_and_conflicts_differ(sample):
    root, manifest, truth, persons, payloads = sample
    originals = {}
    for row in truth:
        if row["status"] == "good":
            originals[(row["channel"], row["event_id"])] = payloads[(row["file"], row["index"])]
    n_dup = n_conf = 0
    files_differ = 0
    for row in truth:
        if row["status"] == "duplicate":
            n_dup += 1
            assert payloads[(row["file"], row["index"])] == originals[(row["channel"], row["event_id"])]
        elif row["status"] == "conflict":
            n_conf += 1
            original = originals[(row["channel"], row["event_id"])]
            again = payloads[(row["file"], row["index"])]
            assert again != original
            a = json.loads(again) if isinstance(again, bytes) else again
            assert a["event_id"] == row["event_id"]
    assert n_dup > 100 and n_conf >= 1


# ---------------------------------------------------------------------------- realism
def test_role_mix_and_unique_ids():
    counts = collections.Counter(roles_of(i, 7) for i in range(20_000))
    share = {k: v / 20_000 for k, v in counts.items()}
    assert abs(share[("customer",)] - 0.90) < 0.01
    assert abs(share[("customer", "employee")] - 0.04) < 0.006
    assert abs(share[("employee",)] - 0.02) < 0.005
    assert abs(share[("customer", "partner")] - 0.04) < 0.006


def test_identifiers_in_events_belong_to_the_person(sample):
    root, manifest, truth, persons, payloads = sample
    uid_owner = {}
    for p in persons.values():
        for role, info in p["roles"].items():
            uid = info[f"{role}_id"]
            assert re.fullmatch({"customer": r"C\d{8}", "employee": r"E\d{6}", "partner": r"P\d{7}"}[role], uid)
            assert uid not in uid_owner
            uid_owner[uid] = p["person"]
        for phone in p["phones"]:
            assert phone.isdigit()
    seen = collections.Counter()
    kiosk_users = collections.defaultdict(set)
    for ch, rel, row, rec in _good_items(sample):
        p = persons[row["person"]]
        ids = [f for f in UID_FIELDS if rec.get(f)]
        assert len(ids) <= 1
        role = ids[0].split("_")[0] if ids else "customer"
        assert role == row["role"]
        for f in ids:
            assert uid_owner[rec[f]] == row["person"]
        for f in ("email", "requester_email"):
            v = rec.get(f)
            if v is None:
                continue
            if v in JUNK_EMAILS:
                seen["junk_email"] += 1
                continue
            assert _norm_email(v) in p["emails"], (v, p["emails"])
            seen["email_variant" if v != _norm_email(v) else "email"] += 1
        for f in ("phone", "requester_phone"):
            if rec.get(f) is not None:
                assert _norm_phone(rec[f]) in p["phones"]
                seen["phone"] += 1
        dev = rec.get("device_id")
        if dev is not None:
            if dev == ZERO_DEVICE:
                seen["zero_device"] += 1
            elif dev.startswith("kiosk-"):
                kiosk_users[dev].add(rec["customer_id"])
            else:
                assert dev in p["devices"]
        if rec.get("cookie_id") is not None:
            assert rec["cookie_id"] in p["cookies"]
        if rec.get("card_fingerprint") is not None:
            assert rec["card_fingerprint"] in p["cards"]
        if rec.get("agent_id") is not None:
            assert rec["agent_id"] != p["roles"].get("employee", {}).get("employee_id")
            seen["agent"] += 1
        if ch == "transactions":
            assert rec["amount_minor"] >= 0 and rec["currency"] in ("EUR", "GBP", "USD")
            if rec["event_type"] == "payout_sent":
                assert rec.get("partner_id") and row["role"] == "partner"
            else:
                assert rec.get("customer_id")
        if ch == "support":
            assert rec["queue"] == {"customer": "customer_care", "employee": "staff_helpdesk",
                                    "partner": "partner_support"}[row["role"]]
    assert seen["junk_email"] > 0 and seen["email_variant"] > 100 and seen["phone"] > 50
    assert seen["zero_device"] > 0 and seen["agent"] > 100
    assert kiosk_users and max(len(u) for u in kiosk_users.values()) >= 3


def test_households_share_a_device_or_an_email(sample):
    persons = sample[3]
    pairs = [(p, persons[p["household"]]) for p in persons.values() if p["household"]]
    assert pairs
    for a, b in pairs:
        assert b["household"] == a["person"]
        assert set(a["devices"]) & set(b["devices"]) or set(a["emails"]) & set(b["emails"])
        assert a["roles"]["customer"]["customer_id"] != b["roles"]["customer"]["customer_id"]


def test_web_sessions_start_anonymous_and_cookies_link_late(sample):
    first_login, first_anon = {}, {}
    sessions = collections.defaultdict(list)
    for ch, rel, row, rec in _good_items(sample):
        if ch != "web":
            continue
        t = dt.datetime.fromisoformat(rec["occurred_at"])
        sessions[rec["session_id"]].append((t, rec))
        c = rec["cookie_id"]
        if rec["event_type"] == "login":
            first_login[c] = min(first_login.get(c, t), t)
        elif not any(rec.get(f) for f in UID_FIELDS):
            first_anon[c] = min(first_anon.get(c, t), t)
    late = [c for c, t in first_login.items() if c in first_anon and (t - first_anon[c]) > dt.timedelta(days=1)]
    assert len(late) > 10
    never = set(first_anon) - set(first_login)
    assert never
    logged = 0
    for events in sessions.values():
        events.sort(key=lambda e: e[0])
        kinds = [e["event_type"] for _, e in events]
        if "login" in kinds:
            logged += 1
            i = kinds.index("login")
            assert not any(e.get("customer_id") for _, e in events[:i])
    assert 0.3 < logged / len(sessions) < 0.8


def _spearman(xs, ys):
    def ranks(v):
        order = sorted(range(len(v)), key=v.__getitem__)
        r = [0.0] * len(v)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and v[order[j + 1]] == v[order[i]]:
                j += 1
            for k in range(i, j + 1):
                r[order[k]] = (i + j) / 2
            i = j + 1
        return r
    rx, ry = ranks(xs), ranks(ys)
    n = len(xs)
    mx, my = sum(rx) / n, sum(ry) / n
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    return cov / (sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry)) ** 0.5


def test_survey_answers_follow_experience_and_failures(sample):
    persons = sample[3]
    scores = collections.defaultdict(list)
    failures = collections.Counter()
    kinds = collections.Counter()
    for ch, rel, row, rec in _good_items(sample):
        if row["status"] != "good":
            continue
        key = (row["person"], row["role"])
        if rec["event_type"] == "survey_response":
            kinds[(ch, rec["survey"]["kind"])] += 1
            if rec["survey"]["kind"] == "nps":
                scores[key].append(rec["survey"]["score"])
        if rec["event_type"] in ("app_crash", "web_error", "payment_declined", "delivery_late", "ticket_reopened"):
            failures[key] += 1
    assert {("app", "nps"), ("web", "nps"), ("support", "csat"), ("support", "ces"), ("web", "ces")} <= set(kinds)
    keys = [k for k in scores if k[1] == "customer"]
    assert len(keys) > 100
    q = [persons[p]["roles"][role]["experience"] for p, role in keys]
    nps = [sum(scores[k]) / len(scores[k]) for k in keys]
    assert _spearman(q, nps) > 0.3
    # low experience -> more failures
    all_keys = [(p, r) for p, info in persons.items() for r in info["roles"] if r == "customer"]
    qs = [persons[p]["roles"][r]["experience"] for p, r in all_keys]
    assert _spearman(qs, [failures[k] for k in all_keys]) < -0.15


def test_volume_is_a_few_events_per_person_day(sample):
    manifest = sample[1]
    per_person_day = manifest["totals"]["events_generated"] / (400 * 30)
    assert 1.0 < per_person_day < 3.0


# ---------------------------------------------------------------------------- configuration
def _parse(*argv):
    parser = add_arguments(argparse.ArgumentParser())
    return config_from_args(parser.parse_args(list(argv)))


def test_flags_defaults_and_values():
    cfg = _parse()
    assert cfg == GenerateConfig()
    assert (cfg.out_dir, cfg.persons, cfg.days, cfg.seed, cfg.start_date) == ("data/sample", 2000, 30, 7, START)
    cfg = _parse("--out", "x", "--persons", "10", "--days", "3", "--seed", "1", "--start-date", "2025-01-31",
                 "--malformed-rate", "0", "--duplicate-rate", "0.1", "--conflict-rate", "0.01", "--format", "jsonl",
                 "--shards", "2", "--no-truth", "--workers", "3")
    assert cfg == GenerateConfig(out_dir="x", persons=10, days=3, seed=1, start_date=dt.date(2025, 1, 31),
                                 malformed_rate=0.0, duplicate_rate=0.1, conflict_rate=0.01, format="jsonl",
                                 shards=2, truth=False, workers=3)


@pytest.mark.parametrize("argv, message", [
    (["--persons", "-3"], "--persons must be a positive integer, got -3"),
    (["--persons", "0"], "--persons must be a positive integer, got 0"),
    (["--persons", "5000000"], "--persons must be at most"),
    (["--days", "0"], "--days must be a positive integer, got 0"),
    (["--shards", "0"], "--shards must be a positive integer, got 0"),
    (["--seed", "-1"], "--seed must be a non-negative integer"),
    (["--workers", "-2"], "--workers must be 0 (one per CPU) or a positive integer"),
    (["--start-date", "01/10/2026"], "--start-date must be a date like 2026-10-01 (YYYY-MM-DD), got '01/10/2026'"),
    (["--malformed-rate", "2"], "--malformed-rate must be a fraction between 0 and 0.5 (e.g. 0.02 for 2%), got 2.0"),
    (["--duplicate-rate", "-0.1"], "--duplicate-rate must be a fraction between 0 and 0.5"),
    (["--conflict-rate", "0.9"], "--conflict-rate must be a fraction between 0 and 0.5"),
])
def test_bad_flags_raise_actionable_errors(argv, message):
    with pytest.raises(ValueError) as err:
        _parse(*argv)
    assert message in str(err.value)


def test_generate_validates_its_config(tmp_path):
    with pytest.raises(ValueError, match="--format must be one of mixed, avro, jsonl, got 'csv'"):
        generate(GenerateConfig(out_dir=str(tmp_path), format="csv"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="exists and is not a folder"):
        generate(GenerateConfig(out_dir=str(tmp_path / "file")))
