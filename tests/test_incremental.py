"""Incremental state reads (issue 16): a run that reads only the stored state its input can affect
writes exactly what a run that reads every stored row in its windows (``--state full``, a
from-scratch recompute of the same history) writes -- table by table, over consecutive daily runs,
late links and merges, erasure and a replay."""

from __future__ import annotations


import duckdb
import pytest

from touchline.pipelines import backfill
from touchline.pipelines.cli import main
from touchline.pipelines.sample_data import GenerateConfig, generate
from touchline.pipelines.sample_data.daily import split_by_day

from .test_identity_lifecycle import app, run_batch, web, write

FLAGS = ["--hash_key_source", "demo"]
#: columns that differ between two runs of the same history by design: wall clock, and the counters of
#: pipeline_runs (rows read, components rounds over the graph read)
VOLATILE = {"pipeline_runs": {"started_at", "finished_at", "metrics"}, "erasure_requests": {"request_id", "requested_at"}}


def dump(path: str) -> dict[str, list]:
    con = duckdb.connect(path, read_only=True)
    try:
        out = {}
        for (table,) in con.execute("SELECT table_name FROM information_schema.tables ORDER BY 1").fetchall():
            cols = [r[0] for r in con.execute(f'DESCRIBE "{table}"').fetchall()]
            keep = [c for c in cols if c not in VOLATILE.get(table, ())]
            out[table] = con.execute(f'SELECT {", ".join(chr(34) + c + chr(34) for c in keep)} FROM "{table}" ORDER BY ALL').fetchall()
        return out
    finally:
        con.close()


def state_rows(path: str) -> list[int]:
    """Stored rows each run read, in run order."""
    con = duckdb.connect(path, read_only=True)
    try:
        runs = con.execute("SELECT logical_date, metrics FROM pipeline_runs ORDER BY logical_date").fetchall()
    finally:
        con.close()
    return [sum(m["value"] for m in metrics if m["name"].startswith("state.")) for _, metrics in runs]


@pytest.fixture(scope="module")
def daily(tmp_path_factory):
    root = tmp_path_factory.mktemp("incremental")
    generate(GenerateConfig(out_dir=str(root / "sample"), persons=120, days=6, seed=21, malformed_rate=0.05,
                            duplicate_rate=0.05, conflict_rate=0.02, truth=False))
    days = split_by_day(str(root / "sample"), str(root / "daily"))
    return root, sorted(days)


def test_daily_runs_reading_the_affected_state_equal_full_reads(daily, tmp_path):
    root, days = daily
    warehouses = {}
    for mode in ("affected", "full"):
        wh = str(tmp_path / f"{mode}.duckdb")
        assert backfill.run(["--input", str(root / "daily" / "{date}"), "--from_date", days[0], "--to_date", days[-1],
                             "--warehouse", wh, "--state", mode, *FLAGS], progress_enabled=False) == 0
        warehouses[mode] = wh
    a, b = dump(warehouses["affected"]), dump(warehouses["full"])
    for table in ("touchpoints", "identity_map", "identity_links", "journeys", "person_scores_daily", "person_scores_current"):
        assert a[table], f"{table} is empty: the comparison would prove nothing"
    assert a.keys() == b.keys()
    for table in a:
        assert a[table] == b[table], table
    # and the incremental runs did read less than everything (the first run reads nothing)
    affected, full = state_rows(warehouses["affected"]), state_rows(warehouses["full"])
    assert affected[0] == full[0] == 0 and len(affected) == len(days)
    assert sum(affected[1:]) < sum(full[1:])


def _inputs(root):
    day1 = {
        "web": write(root / "d1" / "web.jsonl", [
            web("w-old", "2026-10-01T10:00:00Z", "ck-ann"),
            web("w-recent", "2026-10-20T10:00:00Z", "ck-ann"),
            web("w-other", "2026-10-20T11:00:00Z", "ck-bob"),
            web("w-kiosk", "2026-10-20T12:00:00Z", "ck-kiosk", device_id="dev-kiosk"),
        ]),
        "app": write(root / "d1" / "app.jsonl", [
            app("a-1", "2026-10-18T09:00:00Z", "dev-ann", customer_id="C-ANN", event_type="login", email="Ann@Example.com"),
            app("a-bob", "2026-10-18T09:30:00Z", "dev-bob", customer_id="C-BOB"),
            *[app(f"k-{i}", "2026-10-19T09:00:00Z", "dev-kiosk", customer_id=f"C-K{i}") for i in range(4)],
        ]),
    }
    day2 = {"web": write(root / "d2" / "web.jsonl", [
        web("w-login", "2026-10-31T08:00:00Z", "ck-ann", customer_id="C-ANN", event_type="login"),
        web("w-kiosk-2", "2026-10-31T09:00:00Z", "ck-k9", device_id="dev-kiosk", customer_id="C-K9"),
    ])}
    return day1, day2


def _lifecycle(root, wh: str, mode: str, lookback: int = 14) -> list[dict]:
    """Late login, merge, quarantine, erasure and a replay of everything, in one warehouse; a dump after each step."""
    if (root / "d1").exists():  # written by the first call: rewriting them would change their mtimes (run ids)
        day1 = {"web": str(root / "d1" / "web.jsonl"), "app": str(root / "d1" / "app.jsonl")}
        day2 = {"web": str(root / "d2" / "web.jsonl")}
    else:
        day1, day2 = _inputs(root)
    flags = [*FLAGS, "--identity_lookback_days", str(lookback), "--identity_degree_caps", "device_id=3", "--state", mode]

    def run(inputs, date):
        return run_batch(wh, date, inputs, flags)

    dumps = []
    run(day1, "2026-10-20")
    dumps.append(dump(wh))
    run(day2, "2026-10-31")
    dumps.append(dump(wh))
    assert main(["erase", "--warehouse", wh, "--hash_key_source", "demo", "--identifier", "customer_id:C-BOB"]) == 0
    run({"web": [day1["web"], day2["web"]], "app": day1["app"]}, "2026-10-31")
    dumps.append(dump(wh))
    return dumps


@pytest.mark.parametrize("lookback", [14, 30], ids=["lookback-in-window", "lookback-beyond-window"])
def test_late_links_merges_quarantine_erasure_and_replay_read_incrementally_equal_full_reads(tmp_path, lookback):
    """14 days: the identity lookback lies inside the experience window (read at once); 30 (the
    default): its older part is read after stitching, only where an identifier moved."""
    affected = _lifecycle(tmp_path / "input", str(tmp_path / "a.duckdb"), "affected", lookback)
    full = _lifecycle(tmp_path / "input", str(tmp_path / "f.duckdb"), "full", lookback)  # the same files: the same run ids
    for step, (a, b) in enumerate(zip(affected, full)):
        for table in a:
            assert a[table] == b[table], (step, table)
    merged = affected[1]["person_merges"]
    quarantined = {row[0] for row in affected[1]["identity_quarantine"]}
    assert merged and quarantined, "the scenario must merge persons and quarantine the kiosk"
    # the late login moves w-recent (2026-10-20: inside the window, read at once) to Ann's person:
    # stored touchpoints holding an identifier that moved go through attribution again
    after_login = {row[0]: row[5] for row in affected[1]["touchpoints"]}  # event_id, ..., person_id
    assert after_login["w-recent"] == after_login["a-1"] is not None
    assert after_login["w-other"] is not None and after_login["w-other"] != after_login["a-1"]
    # the read sets the stored touchpoints apart by the run's event ids: the second run has none of
    # the stored events (none reach identity's join), the replay has them again (all go through it)
    path = str(tmp_path / "a.duckdb")
    replays, others = read_counter(path, "state.history.rows"), read_counter(path, "state.unreplayed.rows")
    assert replays[1] == 0 and others[1] >= 1, (replays, others)
    assert replays[2] >= 1, replays
    if lookback == 30:
        # the late login of 2026-10-31 moves w-old (2026-10-01: before the experience window, which
        # starts 2026-10-16) to Ann's person: read by the second, moved-only read
        moved = read_counter(str(tmp_path / "a.duckdb"), "state.history_moved.rows")
        assert moved[1] >= 1, moved
        persons = {row[0]: row for row in _touchpoint_persons(str(tmp_path / "a.duckdb"))}
        assert persons["w-old"][1] == persons["a-1"][1] is not None


def read_counter(path: str, name: str) -> list[int]:
    """A counter of every run, in run order (0 where a run did not count it)."""
    con = duckdb.connect(path, read_only=True)
    try:
        runs = con.execute("SELECT metrics FROM pipeline_runs ORDER BY logical_date, started_at").fetchall()
    finally:
        con.close()
    return [sum(m["value"] for m in metrics if m["name"] == name) for (metrics,) in runs]


def _touchpoint_persons(path: str) -> list[tuple]:
    con = duckdb.connect(path, read_only=True)
    try:
        return con.execute("SELECT event_id, person_id FROM touchpoints").fetchall()
    finally:
        con.close()


def test_backfill_resumes_at_the_failed_day_and_skips_committed_days(daily, tmp_path, capsys):
    root, days = daily
    wh = str(tmp_path / "resume.duckdb")
    argv = ["--input", str(root / "daily" / "{date}"), "--from_date", days[0], "--to_date", days[-1], "--warehouse", wh,
            *FLAGS]
    third = root / "daily" / days[2]
    parked = root / "parked"
    third.rename(parked)  # a renamed folder keeps its files' mtimes: the same run ids once it is back
    try:
        with pytest.raises(backfill.ConfigError) as failed:
            backfill.run(argv, progress_enabled=False)
    finally:
        parked.rename(third)
    assert f"day {days[2]}" in failed.value.problem and f"resume at {days[2]}" in failed.value.fix
    assert len(state_rows(wh)) == 2, "the days before the failed one are committed, the failed one is not"
    capsys.readouterr()
    assert backfill.run(argv, progress_enabled=False) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out] == days
    assert all("skipped" in line for line in out[:2]) and not any("skipped" in line for line in out[2:])
    assert len(state_rows(wh)) == len(days)
    capsys.readouterr()
    assert backfill.run(argv, progress_enabled=False) == 0
    assert all("skipped" in line for line in capsys.readouterr().out.splitlines())


def test_backfill_says_how_to_name_the_day_in_the_input(tmp_path):
    with pytest.raises(backfill.ConfigError) as err:
        backfill.run(["--input", str(tmp_path), "--from_date", "2026-10-01", "--to_date", "2026-10-02",
                      "--warehouse", str(tmp_path / "w.duckdb")], progress_enabled=False)
    assert "{date}" in err.value.fix
