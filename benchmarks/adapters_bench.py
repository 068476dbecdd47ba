"""Benchmark of parsing per source (native channels vs source adapters) and of the run report.

    .venv/bin/python -m benchmarks.adapters_bench                  # 20000 records per source
    .venv/bin/python -m benchmarks.adapters_bench --records 5000 --report data/demo/touchline.duckdb

* ``parse``: records/s of the parse step (decode -> conform to the raw schema -> map -> hash ids
  -> redact attributes) for each source, one core, no runner: the fixture records of
  ``tests/fixtures`` repeated with fresh ids, so adapters and channels are compared on the same
  kind of content. The runner adds the same overhead to every source.
* ``report``: seconds to query and render ``touchline report`` on a given warehouse.

Figures go to docs/benchmarks.md with the machine they were measured on; nothing here is a
pass/fail test.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import tempfile
import time

#: the field that makes a record distinct, and whether it is an integer
ID_FIELDS = {"segment": ("messageId", False), "helpdesk": ("id", True), "payments": ("id", False),
             "ga4": ("event_bundle_sequence_id", True)}


def _records(root: str, name: str, n: int) -> list[bytes]:
    kind = "adapters" if os.path.isdir(os.path.join(root, "adapters", name)) else "channels"
    with open(os.path.join(root, kind, name, "good.jsonl"), "rb") as fh:
        base = [json.loads(line) for line in fh.read().splitlines()]
    field, integer = ID_FIELDS.get(name, ("event_id", False))
    out = []
    for i in range(n):
        rec = dict(base[i % len(base)])
        rec[field] = i if integer else f"{rec.get(field, 'x')}-{i}"
        out.append(json.dumps(rec).encode())
    return out


def bench_parse(records: int, names: list[str] | None = None) -> list[tuple[str, int, float]]:
    """[(source, records, seconds)] of ParseFn over ``records`` records per source."""
    from touchline.transforms import channels
    from touchline.transforms.contract import run_parse
    from touchline.transforms.context import RunContext
    from touchline.transforms.parse import ParseFn

    root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "fixtures")
    results = []
    for name in names or [c.name for c in channels.BUILTIN]:
        payloads = _records(root, name, records)
        fn = ParseFn(name, RunContext("bench", dt.date(2026, 10, 31), "demo"))
        run_parse(fn, payloads[:50])  # setup + warm caches
        start = time.perf_counter()
        out = run_parse(fn, payloads)
        seconds = time.perf_counter() - start
        bad = sum(1 for kind, _ in out if kind != "touchpoint")
        if bad:
            raise RuntimeError(f"{name}: {bad} benchmark records became dead letters")
        results.append((name, records, seconds))
    return results


def bench_report(warehouse_path: str) -> float:
    from touchline.pipelines.report import write_report
    from touchline.transforms.warehouse import open_warehouse

    wh = open_warehouse(warehouse_path)
    out = os.path.join(tempfile.mkdtemp(), "report.html")
    try:
        start = time.perf_counter()
        write_report(wh, out)
        return time.perf_counter() - start
    finally:
        wh.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--report", default=None, help="a DuckDB warehouse to time `touchline report` on")
    args = parser.parse_args(argv)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"{'source':<14}{'records':>9}{'seconds':>9}{'records/s':>11}")
    for name, n, seconds in bench_parse(args.records):
        print(f"{name:<14}{n:>9}{seconds:>9.2f}{n / seconds:>11,.0f}")
    if args.report:
        print(f"report on {args.report}: {bench_report(args.report):.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
