"""Steady state: consecutive daily batch runs into one warehouse that keeps growing.

    .venv/bin/python -m benchmarks.steady_bench                                # 60 days of ~10^5 events
    .venv/bin/python -m benchmarks.steady_bench --days 10 --per_day 1e4        # a quick look
    .venv/bin/python -m benchmarks.steady_bench --state full                   # the reference: read every stored row
    .venv/bin/python -m benchmarks.steady_bench --pythonpath /work/before-pkg  # another checkout's code, same data
    .venv/bin/python -m benchmarks.steady_bench --first_day 31 --only_days 31 --start_from day30.duckdb  # one day, A/B

The sample generator writes ``--days`` days of data for as many persons as give about ``--per_day``
input records a day (seed 7; made once and kept under ``--data``), split into one folder per day
(``touchline generate --split-by-day``). Each day then runs as a scheduled run would: a fresh
``touchline batch --input DAY --logical_date DAY`` process into the same DuckDB file, on the
chosen runner mode. Per day it prints the wall time of the whole process (start-up, state reads,
pipeline, commit), the stored rows the run read (the run's ``touchline/state.*.rows`` counters in
``pipeline_runs``: "-" for code that does not count them), the size of the stored history after
the run (touchpoints and identity_map rows) and the peak RSS of the process tree (sampled every 0.2 s,
``peak max``: the largest single process). At the end: day 2, the middle day and the last day side
by side, with the last day's time and memory over day 2's. ``--first_day N --start_from FILE`` starts
at day N on a copy of FILE (a warehouse holding days 1..N-1, e.g. a ``--warehouse`` kept from an
earlier run): the same day on the same stored state, for comparing two builds.

A daily run's cost should follow what the day brings, not what is stored: with ``--state
affected`` (the default) a run reads the stored rows of the persons its identifiers reach, within
the lookbacks (identity 30 days, scores 15 days by default), so its cost grows while those windows
fill and then stays flat. Nothing here asserts a time; figures go to docs/benchmarks.md with the
machine and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile

from .pipeline_bench import KEY_SOURCE, SEED, load, machine, measure_command, persons_for, runner_flags


def ensure_daily(root: str, per_day: int, days: int, workers: int = 0) -> tuple[str, list[str]]:
    """root/daily-<per_day>x<days>/YYYY-MM-DD/<channel>/..., generated and split once, then reused."""
    from touchline.pipelines.sample_data import GenerateConfig, generate
    from touchline.pipelines.sample_data.daily import split_by_day

    name = f"{per_day}x{days}"
    daily = os.path.join(root, f"daily-{name}")
    done = os.path.join(daily, "_days.json")
    if os.path.exists(done):
        with open(done, encoding="utf-8") as fh:
            return daily, json.load(fh)
    sample = os.path.join(root, f"sample-{name}")
    cfg = GenerateConfig(out_dir=sample, persons=persons_for(per_day * days, days), days=days, seed=SEED, truth=False,
                         workers=workers)
    print(f"generating {days} days of ~{per_day:,} records a day ({cfg.persons:,} persons) under {sample}", flush=True)
    generate(cfg)
    print(f"splitting it by day under {daily}", flush=True)
    day_list = sorted(split_by_day(sample, daily))
    with open(done, "w", encoding="utf-8") as fh:
        json.dump(day_list, fh)
    return daily, day_list


def day_figures(warehouse: str, day: str, counts_state: bool) -> dict:
    """What the run of ``day`` recorded, and the stored history after it (``state_rows`` None when the
    code does not count its stored-state reads)."""
    import duckdb

    con = duckdb.connect(warehouse, read_only=True)
    try:
        row = con.execute("SELECT metrics FROM pipeline_runs WHERE logical_date = ? ORDER BY finished_at DESC LIMIT 1",
                          [day]).fetchone()
        metrics = {m["name"]: m["value"] for m in (row[0] if row else [])}
        read = sum(v for k, v in metrics.items() if k.endswith(".read") and not k.startswith("state."))
        stored = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("touchpoints", "identity_map")}
    finally:
        con.close()
    reads = {k[len("state."):-len(".rows")]: v for k, v in metrics.items() if k.startswith("state.") and k.endswith(".rows")}
    return {"read": read, "state_rows": sum(reads.values()) if reads or counts_state else None, "state_reads": reads,
            **stored}


def run_days(daily: str, days: list[str], warehouse: str, mode: str, workers: int, flags: list[str],
             pythonpath: str = "", max_rss_mb: int = 0):
    """One ``touchline batch`` process per day, in order; yields each day's figures as it finishes."""
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (pythonpath, env.get("PYTHONPATH", "")) if p)
    probe = subprocess.run([sys.executable, "-c", "import importlib.util as u; "
                            "print(bool(u.find_spec('touchline.transforms.warehouse.state')))"],
                           env=env, capture_output=True, text=True, check=True)
    counts_state = probe.stdout.strip() == "True"
    for day in days:
        cmd = [sys.executable, "-m", "touchline.pipelines.cli", "--quiet", "batch", "--input", os.path.join(daily, day),
               "--logical_date", day, "--warehouse", warehouse, "--hash_key_source", KEY_SOURCE,
               *runner_flags(mode, workers), *flags]
        run = measure_command(cmd, max_rss_mb, env)
        if run["aborted"] or run["returncode"] != 0:
            raise RuntimeError(f"day {day}: {run['aborted'] or 'failed'}\n{run['stderr'][-3000:]}")
        yield {"day": day, "wall_s": run["wall_s"], "peak_rss_mb": run["peak_rss_mb"], "peak_max_mb": run["peak_max_mb"],
               **day_figures(warehouse, day, counts_state)}


def _line(i: int, r: dict) -> str:
    state = "-" if r["state_rows"] is None else f"{r['state_rows']:,}"
    return (f"{i:>4}  {r['day']}  {r['read']:>9,}  {r['wall_s']:>7.1f}  {state:>12}  {r['touchpoints']:>11,}  "
            f"{r['identity_map']:>11,}  {r['peak_rss_mb']:>8,}  {r['peak_max_mb']:>8,}")


HEADER = (f"{'day':>4}  {'date':<10}  {'read':>9}  {'wall s':>7}  {'state rows':>12}  {'stored tps':>11}  "
          f"{'stored ids':>11}  {'peak MB':>8}  {'max MB':>8}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.steady_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=60, help="consecutive daily runs (default 60)")
    parser.add_argument("--per_day", type=lambda t: int(float(t)), default=100_000,
                        help="input records a day, about (default 1e5)")
    parser.add_argument("--only_days", type=int, default=0,
                        help="run only the first N days of the --days feed (e.g. to sample a slow build's trend)")
    parser.add_argument("--data", default="data/bench", help="where generated input is kept between runs")
    parser.add_argument("--mode", default="multi_processing", choices=("in_memory", "multi_processing"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--state", default="", choices=("", "affected", "full"),
                        help="--state for every run (default: the code's own default; old code has no such flag)")
    parser.add_argument("--flags", default="", help="extra `touchline batch` flags for every day")
    parser.add_argument("--pythonpath", default="", help="run the days with this first on PYTHONPATH (another checkout)")
    parser.add_argument("--warehouse", default="", help="DuckDB file to run into (default: a fresh temporary one)")
    parser.add_argument("--max_rss_gb", type=float, default=0, help="stop a day whose process tree grows beyond this")
    parser.add_argument("--json", default="", help="also write every day's figures to this file")
    parser.add_argument("--first_day", type=int, default=1,
                        help="start at this day of the feed (with --start_from: the warehouse of the days before it)")
    parser.add_argument("--start_from", default="",
                        help="DuckDB file holding days 1..first_day-1, copied to --warehouse before the first run")
    args = parser.parse_args(argv)
    if (args.first_day > 1) != bool(args.start_from):
        parser.error("--first_day N needs --start_from FILE (a warehouse holding days 1..N-1), and the other way round")
    if not 1 <= args.first_day <= (args.only_days or args.days):
        parser.error(f"--first_day {args.first_day}: the feed's days are 1..{args.only_days or args.days}")
    if args.start_from and not os.path.isfile(args.start_from):
        parser.error(f"--start_from {args.start_from}: no such file (a DuckDB warehouse kept with --warehouse)")

    daily, days = ensure_daily(args.data, args.per_day, args.days)
    days = days[args.first_day - 1: args.only_days or args.days]
    warehouse = args.warehouse or os.path.join(tempfile.mkdtemp(prefix="touchline-steady-"), "steady.duckdb")
    if os.path.abspath(warehouse) == os.path.abspath(args.start_from or "-"):
        parser.error("--warehouse must differ from --start_from (the runs write into a copy)")
    if os.path.exists(warehouse):
        os.remove(warehouse)
    if args.start_from:
        shutil.copyfile(args.start_from, warehouse)
    flags = [*(["--state", args.state] if args.state else []), *shlex.split(args.flags)]
    print(f"machine: {machine()}; load before: {load()}")
    print(f"{len(days)} daily runs of {daily} into {warehouse}, {args.mode}"
          f"{f' ({args.workers} workers)' if args.mode != 'in_memory' else ''}, "
          f"flags: {' '.join(flags) or '-'}{', code from ' + args.pythonpath if args.pythonpath else ''}")
    print(HEADER, flush=True)
    results = []
    for i, r in enumerate(run_days(daily, days, warehouse, args.mode, args.workers, flags, args.pythonpath,
                                   int(args.max_rss_gb * 1024)), args.first_day):
        results.append(r)
        print(_line(i, r), flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"machine": machine(), "flags": flags, "pythonpath": args.pythonpath, "days": results}, fh, indent=1)
    print(f"load after: {load()}")
    if len(results) >= 2 and args.first_day == 1:
        picks = sorted({2, (len(results) + 1) // 2, len(results)})
        print("\n" + HEADER)
        for i in picks:
            print(_line(i, results[i - 1]))
        first, last = results[1], results[-1]
        print(f"day {len(results)} / day 2: time x{last['wall_s'] / first['wall_s']:.2f}, "
              f"peak RSS x{last['peak_rss_mb'] / max(1, first['peak_rss_mb']):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
