"""Identity stitching alone: identifiers/s, connected-components rounds and peak memory.

    python -m benchmarks.identity_bench --sizes 10000 100000 1000000 [--chain 16]
                                        [--mode in_memory|multi_processing] [--max_rounds 8]

Measures ``StitchPersons`` (graph -> guards -> connected components -> conflict splits -> person
ids; no parsing, attribution or warehouse I/O) on the DirectRunner, one fresh process per size so
that peak memory is per size. The population is synthetic and deterministic, generated inside the
pipeline: per person a customer_id, an e-mail, one or two devices, one to three cookies and a card,
on app logins, anonymous and signed-in web visits, an anonymous form and a purchase (about 7
identifiers and 8 touchpoints per person); 1% of persons share a device with a neighbour
(household: a conflict to quarantine) and every 2,000 persons share a kiosk (a degree-cap hub).

``--chain K`` also stitches one chain of 2^K identifiers (each event links one cookie to the next,
the worst case for components rounds) with ``--max_rounds 20`` and reports the rounds it used.

Columns: identifiers and touchpoints in, persons out, wall seconds of the run (graph construction
included), identifiers per second, rounds used (rounds whose input had nodes), residual edges left
for the exact in-memory finish, peak RSS of the driver process and of the largest worker process.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import resource
import subprocess
import sys
import time

DAY = 86_400_000_000
T0 = 20_727 * DAY


def _h(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _tp(event_id: str, t: int, *identifiers: tuple[str, str]) -> dict:
    return {"event_id": event_id, "channel": "bench", "event_type": "e", "event_time": t, "event_date": t // DAY,
            "person_id": None, "role": "customer", "identifiers": [{"kind": k, "id_hash": _h(f"{k}:{v}")} for k, v in identifiers],
            "source": "bench"}


def persons_block(block: int, per_block: int, total: int):
    """Touchpoints of persons block*per_block .. +per_block (at most ``total``; deterministic)."""
    import random

    rng = random.Random(block)
    for i in range(block * per_block, min((block + 1) * per_block, total)):
        t = T0 + rng.randrange(30 * DAY)
        c, e, card = ("customer_id", f"C{i}"), ("email", f"u{i}@x.example"), ("card_fingerprint", f"fp{i}")
        devices = [("device_id", f"d{i}")] + ([("device_id", f"d{i}b")] if rng.random() < 0.3 else [])
        if i % 100 == 99:  # household: shares the previous person's device
            devices.append(("device_id", f"d{i - 1}"))
        cookies = [("cookie_id", f"k{i}.{j}") for j in range(1 + rng.randrange(3))]
        for n, d in enumerate(devices):
            yield _tp(f"a{i}.{n}", t + n, c, d)
        for n, k in enumerate(cookies):
            yield _tp(f"w{i}.{n}", t + 10 + n, k)  # anonymous visit
        yield _tp(f"l{i}", t + 20, c, cookies[0])  # signs in on the web
        yield _tp(f"f{i}", t + 30, e, cookies[-1])  # anonymous form with the e-mail
        yield _tp(f"p{i}", t + 40, c, e, card)  # purchase
        if i % 40 == 0:  # some persons also use the store kiosk of their 2,000-person area
            yield _tp(f"k{i}", t + 50, c, ("device_id", f"kiosk-{i // 2000}"))


def chain_events(k: int):
    n = 1 << k
    return [_tp(f"c{i}", T0 + i, ("cookie_id", f"c{i}"), ("cookie_id", f"c{i + 1}")) for i in range(n - 1)]


def identifiers_per_person() -> float:
    # customer, e-mail, card, 1.3 devices, 2 cookies on average (+ shared devices and kiosks)
    return 3 + 1.3 + 2


def buckets_for(size: int) -> int:
    """The batch pipeline's default for this many identifiers (about one touchpoint each) on two workers."""
    from touchline.pipelines.options import ROWS_PER_PIECE

    return max(8, round((size / ROWS_PER_PIECE) ** 0.5))


def _batches(rows: list[dict], buckets: int):
    """A block of touchpoint rows -> (bucket of event_id, packed table), as parsing hands them on."""
    from touchline import schemas
    from touchline.transforms import batches
    from touchline.transforms.packing import pack

    spec = schemas.table_schema("touchpoints")
    table = batches.from_rows([{name: row.get(name) for name in spec.columns} for row in rows], spec)
    for key, piece in batches.split(table, batches.buckets_of((r["event_id"] for r in rows), buckets)):
        yield key, pack(piece)


def measure(kind: str, size: int, mode: str, max_rounds: int) -> dict:
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from touchline.pipelines.batch import counters
    from touchline.pipelines.runners import batch_pipeline
    from touchline.transforms.context import RunContext
    from touchline.transforms.identity import IdentityConfig, StitchPersons

    flags = ["--runner=DirectRunner", f"--direct_running_mode={mode}"]
    if mode == "multi_processing":
        flags.append("--direct_num_workers=2")
    ctx = RunContext("bench", dt.date(2026, 10, 31), "demo", buckets=buckets_for(size))
    started = time.time()
    p = batch_pipeline(PipelineOptions(flags))
    if kind == "chain":
        rows = p | "Chain" >> beam.Create([chain_events(size)])
        identifiers, events = 1 << size, (1 << size) - 1
    else:
        per_block = 500
        persons = max(1, round(size / identifiers_per_person()))
        blocks = -(-persons // per_block)
        rows = (p | "Blocks" >> beam.Create(list(range(blocks))) | "Spread" >> beam.Reshuffle()
                | "Persons" >> beam.Map(lambda block: list(persons_block(block, per_block, persons))))
        identifiers, events = None, None
    touchpoints = rows | "Batches" >> beam.FlatMap(_batches, ctx.buckets)
    out = {"touchpoints": touchpoints} | "Stitch" >> StitchPersons(ctx, IdentityConfig(max_rounds=max_rounds))
    for name in ("identity_map", "identity_quarantine"):
        out[name] | f"Count{name}" >> beam.Map(
            lambda kv, name=name: beam.metrics.Metrics.counter("touchline", f"bench.{name}").inc(len(kv[1])))
    rows | "CountTouchpoints" >> beam.Map(lambda block: beam.metrics.Metrics.counter("touchline", "bench.touchpoints").inc(len(block)))
    built = time.time()
    result = p.run()
    result.wait_until_finish()
    finished = time.time()
    c = counters(result)
    rounds = [int(k.split("round_")[1][:2]) for k, v in c.items() if "round_" in k and v > 0]
    identifiers = identifiers or c.get("bench.identity_map", 0)
    seconds = finished - started
    return {
        "kind": kind, "size": size, "mode": mode, "max_rounds": max_rounds,
        "identifiers": identifiers, "touchpoints": events or c.get("bench.touchpoints", 0),
        "persons": c.get("identity.persons", 0), "quarantined": c.get("bench.identity_quarantine", 0),
        "seconds": round(seconds, 1), "build_seconds": round(built - started, 1),
        "identifiers_per_second": round(identifiers / seconds),
        "rounds_used": max(rounds, default=0), "residual_edges": c.get("identity.cc.residual_edges", 0),
        "peak_rss_mb_driver": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "peak_rss_mb_worker": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
    }


def machine() -> str:
    cpu = "?"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    import apache_beam

    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, Python {sys.version.split()[0]}, Beam {apache_beam.__version__}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.identity_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000], help="identifiers per run")
    parser.add_argument("--chain", type=int, default=None, metavar="K", help="also stitch a chain of 2^K identifiers")
    parser.add_argument("--mode", choices=("in_memory", "multi_processing"), default="multi_processing")
    parser.add_argument("--max_rounds", type=int, default=8)
    parser.add_argument("--json", default=None, help="also write the results to this file")
    parser.add_argument("--one", nargs=2, metavar=("KIND", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        kind, size = args.one
        print(json.dumps(measure(kind, int(size), args.mode, args.max_rounds)))
        return 0
    print(f"machine: {machine()}; DirectRunner {args.mode}", flush=True)
    runs = [("population", s, args.max_rounds) for s in args.sizes] + ([("chain", args.chain, 20)] if args.chain else [])
    header = ("run", "identifiers", "touchpoints", "persons", "seconds", "ids/s", "rounds", "residual", "RSS driver MB", "RSS worker MB")
    print(" | ".join(header), flush=True)
    results = []
    for kind, size, rounds in runs:
        proc = subprocess.run([sys.executable, "-m", "benchmarks.identity_bench", "--one", kind, str(size), "--mode", args.mode,
                               "--max_rounds", str(rounds)], capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"{kind} {size}: failed\n{proc.stderr[-3000:]}", file=sys.stderr)
            return 1
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        results.append(r)
        label = f"chain 2^{size}" if kind == "chain" else f"{size:,}"
        print(" | ".join(str(x) for x in (label, f"{r['identifiers']:,}", f"{r['touchpoints']:,}", f"{r['persons']:,}",
                                          r["seconds"], f"{r['identifiers_per_second']:,}", r["rounds_used"],
                                          r["residual_edges"], r["peak_rss_mb_driver"], r["peak_rss_mb_worker"])), flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"machine": machine(), "results": results}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
