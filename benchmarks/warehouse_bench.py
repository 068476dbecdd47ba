"""Warehouse write benchmark: one batch of N touchpoints committed to DuckDB and to BigQuery (the emulator).

    python -m benchmarks.warehouse_bench --rows 1000000            # both targets, emulator started here
    python -m benchmarks.warehouse_bench --rows 200000 --targets duckdb
    python -m benchmarks.warehouse_bench --endpoint http://127.0.0.1:9050   # an emulator already running

Rows are generated directly (no pipeline) and staged exactly as the pipeline stages them (Parquet for
DuckDB, Avro in BigQuery's load form), in shards of ``--shard`` rows. Each target then commits twice:
a first run (every key new: inserts) and a re-run of the same staging (every key matched: the
idempotent re-run path). Prints seconds and rows/s per phase: stage, load (staging tables), checks
(repeated keys, partitions), merge (the transaction); DuckDB's commit does load+checks+merge in one
transaction, reported as one phase. A benchmark, not a test: it prints figures and asserts nothing
about time. Record results in docs/benchmarks.md with the machine they ran on.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from decimal import Decimal

import fastavro
import pyarrow as pa
import pyarrow.parquet as pq

from touchline import schemas
from touchline.schemas.arrow import arrow_schema
from touchline.schemas.bigquery import load_avro_schema, load_datum

CHANNELS = ("app", "web", "support", "transactions")
EVENTS = {"app": "screen_view", "web": "page_view", "support": "customer_contact", "transactions": "order_placed"}
DAY_MICROS = 86_400_000_000
START_DAY = 20727  # 2026-10-01


def touchpoints(start: int, stop: int, days: int):
    """Deterministic synthetic touchpoints ``start..stop`` spread over ``days`` days."""
    for i in range(start, stop):
        channel = CHANNELS[i % 4]
        day = START_DAY + (i * 7919) % days
        yield {
            "event_id": f"ev-{i:09d}", "channel": channel, "event_type": EVENTS[channel],
            "event_time": day * DAY_MICROS + (i * 104729) % DAY_MICROS, "event_date": day,
            "person_id": f"p-{i % 250_000:07d}", "role": "customer",
            "identifiers": [{"kind": "customer_id", "id_hash": f"{i % 250_000:032x}"},
                            {"kind": "device_id", "id_hash": f"{(i * 31) % 400_000:032x}"}],
            "session_id": f"s-{i // 8:012d}", "ticket_id": None, "order_id": f"o-{i}" if channel == "transactions" else None,
            "survey_kind": None, "survey_score": None,
            "amount": Decimal(i % 50_000) / 100 if channel == "transactions" else None,
            "currency": "EUR" if channel == "transactions" else None,
            "attributes": {"platform": "ios" if i % 3 else "android", "app_version": "5.13.0", "screen": "home"},
            "source": f"bench@{i}",
        }


def stage_parquet(folder: str, rows: int, days: int, shard: int) -> None:
    spec = schemas.table_schema("touchpoints")
    os.makedirs(os.path.join(folder, "touchpoints"), exist_ok=True)
    schema = arrow_schema(spec)
    for n, start in enumerate(range(0, rows, shard)):
        table = pa.Table.from_pylist(list(touchpoints(start, min(start + shard, rows), days)), schema=schema)
        pq.write_table(table, os.path.join(folder, "touchpoints", f"part-{n:05d}.parquet"), compression="snappy")


def stage_avro(folder: str, rows: int, days: int, shard: int) -> None:
    spec = schemas.table_schema("touchpoints")
    os.makedirs(os.path.join(folder, "touchpoints"), exist_ok=True)
    schema = fastavro.parse_schema(load_avro_schema(spec))
    convert = load_datum(spec)
    for n, start in enumerate(range(0, rows, shard)):
        with open(os.path.join(folder, "touchpoints", f"part-{n:05d}.avro"), "wb") as fh:
            fastavro.writer(fh, schema, (convert(r) for r in touchpoints(start, min(start + shard, rows), days)), codec="deflate")


class Timer:
    def __init__(self):
        self.phases: dict[str, float] = defaultdict(float)

    def wrap(self, fn, phase_of):
        def timed(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.phases[phase_of(*args, **kwargs)] += time.perf_counter() - t
        return timed


def bench_duckdb(workdir: str, rows: int, days: int, shard: int) -> list[tuple[str, float]]:
    from touchline.transforms.warehouse.duckdb import DuckDBWarehouse

    staging = os.path.join(workdir, "duckdb-staging")
    t = time.perf_counter()
    stage_parquet(staging, rows, days, shard)
    out = [("stage (Parquet files)", time.perf_counter() - t)]
    wh = DuckDBWarehouse(os.path.join(workdir, "bench.duckdb"))
    wh.init()
    for label in ("commit, new keys (load+checks+merge)", "commit, same keys again (re-run)"):
        t = time.perf_counter()
        written = wh.commit(staging, ["touchpoints"])
        out.append((label, time.perf_counter() - t))
        assert written["touchpoints"] == rows
    (count,) = wh.query("SELECT count(*) FROM touchpoints")[0]
    assert count == rows, count
    wh.close()
    return out


def bench_bigquery(workdir: str, rows: int, days: int, shard: int, endpoint: str) -> list[tuple[str, float]]:
    from touchline.transforms.warehouse.bigquery import BigQueryWarehouse

    staging = os.path.join(workdir, "bq-staging")
    t = time.perf_counter()
    stage_avro(staging, rows, days, shard)
    out = [("stage (Avro files, load form)", time.perf_counter() - t)]
    wh = BigQueryWarehouse("bench-proj", f"bench_{int(time.time())}", endpoint=endpoint)
    wh.init()
    for run in ("new keys", "same keys again (re-run)"):
        timer = Timer()
        wh._load = timer.wrap(wh._load, lambda *a, **k: "load")
        run_sql = wh._run
        wh._run = timer.wrap(run_sql, lambda sql, *a, **k: "merge" if sql.startswith("BEGIN TRANSACTION") else "checks")
        t = time.perf_counter()
        written = wh.commit(staging, ["touchpoints"])
        total = time.perf_counter() - t
        del wh._load, wh._run  # back to the class methods
        assert written["touchpoints"] == rows
        for phase in ("load", "checks", "merge"):
            out.append((f"{phase} ({run})", timer.phases[phase]))
        out.append((f"commit total ({run})", total))
    (count,) = wh.query("SELECT count(*) FROM touchpoints WHERE event_date >= DATE '2026-01-01'")[0]
    assert count == rows, count
    wh.close()
    return out


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), cpu)
    except OSError:
        pass
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        mem = 0
    from importlib.metadata import version

    return (f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, Python {platform.python_version()}, "
            f"duckdb {version('duckdb')}, bqemulator {version('bqemulator')}, google-cloud-bigquery {version('google-cloud-bigquery')}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.warehouse_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=7, help="days (partitions) the rows spread over (default 7)")
    parser.add_argument("--shard", type=int, default=100_000, help="rows per staging file (default 100000)")
    parser.add_argument("--targets", default="duckdb,bigquery")
    parser.add_argument("--endpoint", default=None, help="a running BigQuery emulator's REST endpoint (default: start one)")
    parser.add_argument("--workdir", default=None, help="scratch folder (default: a temporary one, removed after)")
    args = parser.parse_args(argv)
    workdir = args.workdir or tempfile.mkdtemp(prefix="touchline-bench-")
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    emulator = None
    print(f"Warehouse writes: {args.rows:,} touchpoints over {args.days} days, staged in shards of {args.shard:,}")
    print(f"Machine: {machine()}")
    results: list[tuple[str, str, float]] = []
    try:
        if "duckdb" in targets:
            results += [("duckdb", phase, s) for phase, s in bench_duckdb(workdir, args.rows, args.days, args.shard)]
        if "bigquery" in targets:
            endpoint = args.endpoint
            if endpoint is None:
                from pathlib import Path

                from tests.emulators import BigQueryEmulator

                emulator = BigQueryEmulator(Path(workdir)).start()
                endpoint = emulator.endpoint
            results += [("bigquery-emulator", phase, s)
                        for phase, s in bench_bigquery(workdir, args.rows, args.days, args.shard, endpoint)]
    finally:
        if emulator is not None:
            emulator.stop()
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    width = max(len(p) for _, p, _ in results)
    print(f"\n{'target':<18} {'phase':<{width}} {'seconds':>9} {'rows/s':>11}")
    for target, phase, seconds in results:
        rate = f"{args.rows / seconds:,.0f}" if seconds > 0 else "-"
        print(f"{target:<18} {phase:<{width}} {seconds:>9.2f} {rate:>11}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
