"""Benchmark of the experience stage (journeys + scores): throughput and peak memory, two sizes.

    .venv/bin/python -m benchmarks.scoring_bench                # 500 x 14 days and 2000 x 30 days
    .venv/bin/python -m benchmarks.scoring_bench --sizes 300x7  # persons x days, comma-separated

For each size, in a fresh process: generate sample data, parse it and attribute every touchpoint to
its true person (the generator's ground truth stands in for identity stitching, issue 3), then time

* ``stage, first load``  ComputeExperience on the DirectRunner into an empty DuckDB warehouse,
  staging + commit included (what ``touchline batch`` will run);
* ``stage, next day``    one more day of data on top of that state (an incremental daily run);
* ``pure scoring``       :func:`score_person` for every person, no runner (the computation itself).

Prints events/s and the process's peak resident memory during the stage. Figures go to
docs/benchmarks.md with the machine they were measured on; nothing here is a pass/fail test.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

DEFAULT_SIZES = "500x14,2000x30"


def _rss_mb(field: str) -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> None:
    try:  # Linux: resets VmHWM to the current RSS
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
    except OSError:
        pass


def measure(persons: int, days: int) -> dict:
    from tests.experience_harness import day_of, parsed_sample, run_stage
    from touchline.transforms.experience import ExperienceSettings, score_person
    from touchline.transforms.scoring.model import load_model

    t0 = time.perf_counter()
    tps, _ = parsed_sample(persons, days, 7)
    prepare = time.perf_counter() - t0
    tps = list(tps)
    all_days = sorted({tp["event_date"] for tp in tps})
    history = [tp for tp in tps if tp["event_date"] < all_days[-1]]
    last_day = [tp for tp in tps if tp["event_date"] == all_days[-1]]
    root = tempfile.mkdtemp(prefix="touchline-bench-")
    out = {"persons": persons, "days": days, "events": len(tps), "prepare_s": round(prepare, 1)}
    try:
        warehouse = os.path.join(root, "bench.duckdb")
        staging = os.path.join(root, "staging")
        _reset_peak()
        base = _rss_mb("VmRSS")
        t0 = time.perf_counter()
        run_stage(warehouse, history, day_of(all_days[-2]), staging)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        run_stage(warehouse, last_day, day_of(all_days[-1]), staging)
        nxt = time.perf_counter() - t0
        out.update(first_load_events=len(history), first_load_s=round(first, 1),
                   first_load_events_per_s=round(len(history) / first),
                   next_day_events=len(last_day), next_day_s=round(nxt, 1),
                   next_day_events_per_s=round(len(last_day) / nxt),
                   rss_before_mb=round(base), peak_rss_mb=round(_rss_mb("VmHWM")))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    model, settings = load_model(), ExperienceSettings()
    groups = collections.defaultdict(list)
    for tp in tps:
        groups[tp["person_id"]].append((1, tp))
    t0 = time.perf_counter()
    for person, rows in groups.items():
        score_person(person, rows, [], [], [], model, settings, all_days[-1])
    pure = time.perf_counter() - t0
    out.update(pure_s=round(pure, 2), pure_events_per_s=round(len(tps) / pure))
    return out


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            names = [line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")]
        if names:
            cpu = names[0]
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} CPUs visible, Python {platform.python_version()}, {platform.system()} {platform.release()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help=f"persons x days, comma-separated (default {DEFAULT_SIZES})")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        persons, days = map(int, args.one.split("x"))
        print(json.dumps(measure(persons, days)))
        return 0
    print(f"experience stage benchmark, {dt.date.today()}, {machine()}")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    header = ("size", "events", "first load s", "events/s", "next day events", "s", "events/s", "RSS before MB",
              "peak RSS MB", "pure events/s")
    print("  ".join(header))
    for size in args.sizes.split(","):
        done = subprocess.run([sys.executable, "-m", "benchmarks.scoring_bench", "--one", size.strip()],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(f"{size}: failed\n{done.stderr[-2000:]}")
            return 1
        r = json.loads(done.stdout.strip().splitlines()[-1])
        print("  ".join(str(v) for v in (
            f"{r['persons']}x{r['days']}", r["first_load_events"] + r["next_day_events"], r["first_load_s"],
            r["first_load_events_per_s"], r["next_day_events"], r["next_day_s"], r["next_day_events_per_s"],
            r["rss_before_mb"], r["peak_rss_mb"], r["pure_events_per_s"])), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
