"""Identity over several batch runs against a real DuckDB warehouse: late links within the lookback
(older touchpoints left alone), erasure with `touchline erase`, and a replay that must not bring the
erased person back."""

from __future__ import annotations

import json

import duckdb
import pytest

from touchline.pipelines import batch
from touchline.pipelines.cli import main
from touchline.transforms.identifiers import DEMO_KEY, Hasher

H = Hasher(DEMO_KEY)
FLAGS = ["--hash_key_source", "demo", "--identity_lookback_days", "14"]


def h(kind, value):
    return H.identifier(kind, value)["id_hash"]


def web(event_id, when, cookie, **extra):
    return {"event_id": event_id, "occurred_at": when, "event_type": extra.pop("event_type", "page_view"),
            "cookie_id": cookie, "url": "https://www.example.com/", **extra}


def app(event_id, when, device, **extra):
    return {"event_id": event_id, "occurred_at": when, "event_type": extra.pop("event_type", "app_open"),
            "device_id": device, **extra}


def write(path, records, junk=()):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + "".join(line + "\n" for line in junk))
    return str(path)


def run_batch(wh: str, date: str, inputs: dict, flags: list[str]):
    """One batch run of ``{channel: path or [paths]}`` into ``wh`` for ``date``."""
    argv = ["--warehouse", wh, "--logical_date", date, *flags]
    for channel, paths in inputs.items():
        for path in [paths] if isinstance(paths, str) else paths:
            argv += [f"--{channel}_input", path]
    return batch.run(argv)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("lifecycle")
    wh = str(root / "touchline.duckdb")
    day1 = {
        "web": write(root / "d1" / "web.jsonl", [
            web("w-old", "2026-10-01T10:00:00Z", "ck-ann"),  # outside a 14-day lookback from 2026-10-31
            web("w-recent", "2026-10-20T10:00:00Z", "ck-ann"),
            web("w-other", "2026-10-20T11:00:00Z", "ck-bob"),
        ]),
        "app": write(root / "d1" / "app.jsonl", [
            app("a-1", "2026-10-18T09:00:00Z", "dev-ann", customer_id="C-ANN", event_type="login", email="Ann@Example.com"),
            app("a-bob", "2026-10-18T09:30:00Z", "dev-bob", customer_id="C-BOB"),
        ], junk=['{"event_id": "a-bad", "occurred_at": "yesterday", "event_type": "login", "device_id": "dev-ann", '
                 '"email": "ann@example.com"}']),
    }
    day2 = {"web": write(root / "d2" / "web.jsonl", [
        web("w-login", "2026-10-31T08:00:00Z", "ck-ann", customer_id="C-ANN", event_type="login"),
    ])}

    def run(inputs, date):
        return run_batch(wh, date, inputs, FLAGS)

    def snapshot():
        con = duckdb.connect(wh, read_only=True)
        try:
            return {
                "tp": dict(con.execute("SELECT event_id, person_id FROM touchpoints").fetchall()),
                "map": dict(con.execute("SELECT id_hash, person_id FROM identity_map").fetchall()),
                "merges": dict(con.execute("SELECT old_person_id, new_person_id FROM person_merges").fetchall()),
                "dead": con.execute("SELECT raw_payload FROM dead_letters").fetchall(),
                "all": json.dumps({t: con.execute(f'SELECT * FROM "{t}"').fetchall() for (t,) in con.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_name NOT IN ('pipeline_runs', 'erasure_requests')").fetchall()},
                    default=str),
            }
        finally:
            con.close()

    first = run(day1, "2026-10-20")
    after_first = snapshot()
    second = run(day2, "2026-10-31")
    after_second = snapshot()
    return {"run": run, "snapshot": snapshot, "wh": wh, "day1": day1, "day2": day2, "first": first, "second": second,
            "after_first": after_first, "after_second": after_second}


def test_late_login_reattributes_touchpoints_within_the_lookback_only(runs):
    before, after = runs["after_first"]["tp"], runs["after_second"]["tp"]
    customer, anonymous = before["a-1"], before["w-recent"]
    assert anonymous == before["w-old"] != customer
    assert after["w-login"] == customer
    assert after["w-recent"] == customer  # 11 days before the login: re-attributed
    assert after["w-old"] == anonymous  # 30 days before: explicitly left as it was ...
    assert runs["after_second"]["merges"] == {anonymous: customer}  # ... and resolvable through person_merges
    assert after["w-other"] == before["w-other"] and after["a-bob"] == before["a-bob"]
    assert runs["second"].counters["identity.reattributed"] == 1
    assert runs["second"].counters["identity.merged_persons"] == 1


def test_erase_then_replay_keeps_the_person_out(runs, capsys):
    before = runs["after_second"]
    customer = before["tp"]["a-1"]
    ann = {h("customer_id", "C-ANN"), h("email", "ann@example.com"), h("device_id", "dev-ann"), h("cookie_id", "ck-ann")}
    assert ann <= set(before["map"]) and any(f"<email:{h('email', 'ann@example.com')}>" in p for (p,) in before["dead"])
    assert main(["erase", "--warehouse", runs["wh"], "--hash_key_source", "demo", "--identifier", "email:ANN@example.com "]) == 0
    assert "erased 2 person id(s), 4 identifier(s), 4 touchpoint(s)" in capsys.readouterr().out
    gone = runs["snapshot"]()
    assert set(gone["tp"]) == {"w-other", "a-bob"}  # w-old too: it still had the merged-away id
    assert not ann & set(gone["map"]) and gone["merges"] == {} and gone["dead"] == []
    assert customer not in gone["all"] and not any(x in gone["all"] for x in ann)
    # a replay of every input file: the erased person's events are dropped and counted, not re-stitched
    replay = runs["run"]({"web": [runs["day1"]["web"], runs["day2"]["web"]], "app": runs["day1"]["app"]}, "2026-10-31")
    after = runs["snapshot"]()
    assert set(after["tp"]) == {"w-other", "a-bob"} and not ann & set(after["map"]) and after["dead"] == []
    assert after["all"] == gone["all"]  # nothing came back, nothing else changed
    counts = replay.counters
    assert counts["web.erased"] == 3 and counts["app.erased"] == 1 and counts["app.erased_dead_letters"] == 1
    for channel in ("web", "app"):  # read = touchpoints + duplicates + dead letters + erased
        parsed_or_dead = counts[f"{channel}.parsed"] + sum(v for k, v in counts.items() if k.startswith(f"{channel}.dead_letter."))
        assert counts[f"{channel}.read"] == parsed_or_dead
        assert counts[f"{channel}.parsed"] == {"web": 1, "app": 1}[channel] + counts[f"{channel}.erased"]


def test_erase_explains_mistakes(runs, capsys):
    assert main(["erase", "--warehouse", runs["wh"], "--hash_key_source", "demo"]) == 2
    assert "nothing to erase" in capsys.readouterr().err
    assert main(["erase", "--warehouse", runs["wh"], "--identifier", "mail:x@y.z"]) == 2
    assert "not KIND:VALUE with a known kind" in capsys.readouterr().err
    assert main(["erase", "--warehouse", runs["wh"], "--hash_key_source", "demo", "--person_id", "p_" + "0" * 20]) == 2
    err = capsys.readouterr().err
    assert "no person p_00000000000000000000" in err and "Traceback" not in err
