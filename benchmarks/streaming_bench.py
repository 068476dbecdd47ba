"""Streaming benchmark: sustained events/s and publish -> touchpoint-row and publish -> score-row
latency on the local runner.

    .venv/bin/python -m benchmarks.streaming_bench [--persons 300 --days 5] [--rates 0,50] [--json out.json]

Starts the real Pub/Sub emulator (as the tests do), generates sample data, starts ``touchline
stream`` (DirectRunner, streaming) into a fresh DuckDB file, publishes the files with
``touchline publish`` and watches the touchpoints table from a thread (every 0.1 s) until every
expected touchpoint is there. For each publishing rate (0 = as fast as possible):

* **sustained throughput** -- touchpoint rows per second while the stream is busy (between the
  10th and the 90th percentile of row arrival times), and rows/s over the whole run (first publish
  to last row, which includes the DirectRunner's 30 s blocking pull once the subscription is empty);
* **latency** -- per event: first time its row is visible minus the time it was published; p50/p95/max;
* **score latency** -- per attributed event: first time its ``person_scores_daily`` row (person,
  role, day) counts as many touchpoints as had been published for that row up to and including it,
  minus its publish time; p50/p95/max; **events/s** -- messages / (first publish -> last score row).

This is a measurement, not a test: nothing passes or fails. Figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import threading
import time

from touchline.pipelines import streaming
from touchline.pipelines.options import parse_pipeline_args, resolve_stream
from touchline.pipelines.publish import publish
from touchline.pipelines.sample_data import GenerateConfig, generate
from touchline.transforms.pubsub import EVENT_ID_ATTRIBUTE
from touchline.transforms.warehouse import open_warehouse

from tests.pubsub_emulator import emulator_env, start_emulator, stop_emulator


#: the generator's channels (adapter sources such as segment have no folder in generated data)
CHANNELS = ("app", "web", "support", "transactions")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


class RowWatcher(threading.Thread):
    """Records when each event_id first appears in the touchpoints table, and when each daily score
    row (person, role, day) first counts 1, 2, ... touchpoints."""

    def __init__(self, warehouse: str, every: float = 0.1):
        super().__init__(daemon=True)
        self._warehouse = warehouse
        self._every = every
        self.seen: dict[str, float] = {}
        self.counts: dict[tuple, dict[int, float]] = {}
        self.scored = 0  # touchpoints counted by the daily score rows (roles, not `all`)
        self.stop = threading.Event()

    def run(self):
        wh = open_warehouse(self._warehouse)
        try:
            while not self.stop.is_set():
                now = time.time()
                for (event_id,) in wh.query("SELECT event_id FROM touchpoints"):
                    self.seen.setdefault(event_id, now)
                total = 0
                for person, role, day, n in wh.query("SELECT person_id, role, score_date, touchpoints FROM person_scores_daily "
                                                     "WHERE role <> 'all'"):
                    seen = self.counts.setdefault((person, role, day), {})
                    for k in range(1, n + 1):
                        seen.setdefault(k, now)
                    total += n
                self.scored = total
                self.stop.wait(self._every)
        finally:
            wh.close()


def score_latencies(warehouse: str, watcher: RowWatcher, published: dict[str, float]) -> list[float]:
    """Per scored event: first time its (person, role, day) score row counted as many touchpoints as
    had been published for that row up to and including this event, minus its publish time."""
    wh = open_warehouse(warehouse)
    try:
        groups: dict[tuple, list[tuple[float, str]]] = {}
        for event_id, person, role, day in wh.query("SELECT event_id, person_id, role, event_date FROM touchpoints "
                                                    "WHERE person_id IS NOT NULL"):
            if event_id in published:
                groups.setdefault((person, role, day), []).append((published[event_id], event_id))
    finally:
        wh.close()
    out = []
    for key, events in groups.items():
        seen = watcher.counts.get(key, {})
        for k, (at, _event_id) in enumerate(sorted(events), 1):
            if k in seen:
                out.append(seen[k] - at)
    return out


def run_once(emulator, data: str, expected: int, rate: float, workdir: str, timeout: float) -> dict:
    tag = f"bench-{int(rate)}-{int(time.time())}"
    topic, sub = emulator.topic(tag), emulator.subscription(tag)
    warehouse = os.path.join(workdir, f"{tag}.duckdb")
    with emulator_env(emulator):
        # topic + subscription first, so the stream is reading before the first message goes out
        publish(data, topic, channels=list(CHANNELS), create=True, subscription=sub, limit=0)
        argv = ["--subscription", sub, "--warehouse", warehouse, "--hash_key_source", "demo",
                "--allowed_lateness", "3650d", "--dedup_horizon", "3650d", "--write_max_latency", "500ms",
                "--replay_on_restart", "off"]
        options = parse_pipeline_args(argv, "bench")
        handle = streaming.start(resolve_stream(options), options)
        watcher = RowWatcher(warehouse)
        watcher.start()
        published: dict[str, float] = {}

        def on_published(message, at):
            event_id = message.attributes.get(EVENT_ID_ATTRIBUTE)
            if event_id:
                published.setdefault(event_id, at)

        first = time.time()
        report = publish(data, topic, channels=list(CHANNELS), rate=rate, on_published=on_published)
        deadline = time.time() + timeout
        while len(watcher.seen) < expected and time.time() < deadline:
            time.sleep(0.2)
        attributed = None
        while time.time() < deadline:   # then until the score rows count every attributed touchpoint
            wh = open_warehouse(warehouse)
            try:
                attributed = wh.query("SELECT count(*) FROM touchpoints WHERE person_id IS NOT NULL")[0][0]
            finally:
                wh.close()
            if watcher.scored >= attributed:
                break
            time.sleep(0.2)
        watcher.stop.set()
        watcher.join()
        handle.stop()
    arrivals = sorted(watcher.seen.values())
    latencies = [watcher.seen[e] - published[e] for e in watcher.seen if e in published]
    scored = score_latencies(warehouse, watcher, published)
    last_score = max((t for seen in watcher.counts.values() for t in seen.values()), default=float("nan"))
    messages = report.published + report.duplicates
    busy = percentile(arrivals, 0.9) - percentile(arrivals, 0.1) if len(arrivals) > 10 else float("nan")
    return {
        "rate_requested": rate or "max",
        "messages": messages,
        "publish_seconds": round(report.seconds, 2),
        "touchpoints_expected": expected,
        "touchpoints_seen": len(watcher.seen),
        "sustained_rows_per_s": round(0.8 * len(arrivals) / busy, 1) if busy and busy > 0 else float("nan"),
        "overall_rows_per_s": round(len(arrivals) / (arrivals[-1] - first), 1) if arrivals else 0.0,
        "latency_p50_s": round(percentile(latencies, 0.5), 2),
        "latency_p95_s": round(percentile(latencies, 0.95), 2),
        "latency_max_s": round(max(latencies), 2) if latencies else float("nan"),
        "latency_mean_s": round(statistics.fmean(latencies), 2) if latencies else float("nan"),
        "events_per_s": round(messages / (max(arrivals[-1], last_score) - first), 2) if arrivals else 0.0,
        "scored_touchpoints": len(scored),
        "score_latency_p50_s": round(percentile(scored, 0.5), 2),
        "score_latency_p95_s": round(percentile(scored, 0.95), 2),
        "score_latency_max_s": round(max(scored), 2) if scored else float("nan"),
    }


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--persons", type=int, default=300)
    parser.add_argument("--days", type=int, default=5)
    parser.add_argument("--rates", default="0,50", help="comma-separated publish rates in messages/s; 0 = as fast as possible")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="touchline-bench-") as workdir:
        data = os.path.join(workdir, "data")
        generate(GenerateConfig(out_dir=data, persons=args.persons, days=args.days, seed=17, malformed_rate=0.02,
                                conflict_rate=0.0))
        with open(os.path.join(data, "truth", "records.jsonl"), encoding="utf-8") as fh:
            expected = sum(1 for line in fh if '"status": "good"' in line)
        emulator = start_emulator(workdir)
        try:
            for rate in (float(r) for r in args.rates.split(",")):
                result = run_once(emulator, data, expected, rate, workdir, args.timeout)
                results.append(result)
                print(json.dumps(result), flush=True)
        finally:
            stop_emulator(emulator)
    env = {"python": platform.python_version(), "cpus": os.cpu_count(), "machine": platform.machine(),
           "persons": args.persons, "days": args.days}
    print("| publish rate (msg/s) | messages | sustained rows/s | overall rows/s | events/s to scores | touchpoint latency "
          "p50 | p95 | max | score latency p50 | p95 | max |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(f"| {r['rate_requested']} | {r['messages']} | {r['sustained_rows_per_s']} | {r['overall_rows_per_s']} "
              f"| {r['events_per_s']} | {r['latency_p50_s']} s | {r['latency_p95_s']} s | {r['latency_max_s']} s "
              f"| {r['score_latency_p50_s']} s | {r['score_latency_p95_s']} s | {r['score_latency_max_s']} s |")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"env": env, "results": results}, fh, indent=2)
    return results


if __name__ == "__main__":
    main()
