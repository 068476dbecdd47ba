"""The whole batch pipeline against a floor pipeline: wall time, events/s, peak RSS, stage costs.

    .venv/bin/python -m benchmarks.pipeline_bench                              # 10^5, both modes
    .venv/bin/python -m benchmarks.pipeline_bench --sizes 1e5,1e6 --modes multi_processing
    .venv/bin/python -m benchmarks.pipeline_bench --sizes 1e5 --modes in_memory --stages
    .venv/bin/python -m benchmarks.pipeline_bench --sizes 1e5 --profile 25     # cProfile, top 25

For each size (input records: 10^5, 10^6, 10^7) the sample generator's data (30 days, seed 7; the
same kind of data ``touchline generate`` writes, made once and kept under ``--data``) is run
through, each in a fresh process and on the same runner mode:

* ``floor`` -- the least any pipeline over these files does: read the files (the same byte-range
  reader, Avro decoded by fastavro, JSON Lines decoded by orjson), key each record by its person
  (its strongest raw identifier), group by key, write every group as a JSON line. It measures
  the runner's own per-element and per-shuffle cost on this input (today's floor: one element per
  record, as the per-element design moved them).
* ``coarse_floor`` -- the same read, keying, grouping and write with the batch pipeline's data
  plane: one element per file split and hash bucket (a packed batch), one shuffle of those, one
  file per bucket. The least a batch pipeline on coarse elements costs on this runner.
* ``full`` -- ``touchline batch`` on a fresh DuckDB file: generate -> ingest -> dedup -> identity
  stitching -> journeys -> scores -> staged Parquet -> commit. Wall time is the whole run (state
  snapshots, pipeline, commit); the commit is also reported alone.

The figures that matter are ``full / floor`` and ``full / coarse floor``: what Touchline costs
above the runner's floor, per element and on coarse elements.

Modes: ``in_memory`` (the DirectRunner's in-process FnApiRunner, one worker) and
``multi_processing`` (the same runner with ``--direct_num_workers`` SDK worker processes, 2 by
default: both cores of the benchmark machine).

**Stage breakdown** (``--stages``): the graph is cut after each step and every prefix is run on
its own, in a fresh process, ending in a step that drops its elements: ``read`` (files ->
records), ``parse`` (+ parse/validate, dead letters), ``dedup`` (+ deduplicate by event_id),
``identity`` (+ identity stitching and attribution: ``build_pipeline`` without a model),
``experience`` (+ journeys and scores), ``full`` (+ Parquet staging of every table and the
commit). A stage's cost is the difference between its prefix and the one before it: the marginal
cost of adding that step to the graph on this runner, fixed per-stage costs included. Prefix runs
are independent measurements, so small differences are noise (the load average is printed).

**Profile** (``--profile N``): one in-process ``full`` run under cProfile; prints the N functions
with the most own time and the N with the most cumulative time (the in-memory runner executes
every bundle in the calling process, so the profile sees Beam's and Touchline's code alike).

Peak RSS is sampled every 0.2 s over the measured process and all its descendants (the SDK
worker processes of ``multi_processing``): ``peak RSS`` is the largest sum over the process tree,
``peak max`` the largest single process. Nothing here asserts a time; figures go to
docs/benchmarks.md with the machine and the load average they were measured under.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time

DAYS = 30
SEED = 7
RECORDS_PER_PERSON_DAY = 1.608  # input records per person and day of the generator's defaults
LOGICAL_DATE = "2026-10-31"
KEY_SOURCE = "demo"
PREFIXES = ("read", "parse", "dedup", "identity", "experience", "full")
MODES = ("in_memory", "multi_processing")
#: raw identifier fields, strongest first (the floor's "key by person")
FLOOR_KEYS = ("customer_id", "employee_id", "partner_id", "email", "requester_email", "phone", "requester_phone",
              "device_id", "card_fingerprint", "cookie_id", "anonymous_id")


def persons_for(size: int, days: int = DAYS) -> int:
    return max(1, round(size / (days * RECORDS_PER_PERSON_DAY)))


def ensure_data(root: str, size: int, workers: int = 0) -> tuple[str, int, float]:
    """Generated input of about ``size`` records under root/n<size> (made once, then reused).
    Returns (folder, input records, seconds spent generating (0 when reused))."""
    from touchline.pipelines.sample_data import GenerateConfig, generate

    folder = os.path.join(root, f"n{size}")
    cfg = GenerateConfig(out_dir=folder, persons=persons_for(size), days=DAYS, seed=SEED, truth=False, workers=workers)
    manifest_path = os.path.join(folder, "manifest.json")
    if os.path.exists(manifest_path):
        with open(manifest_path, encoding="utf-8") as fh:
            manifest = json.load(fh)
        wanted = {k: v for k, v in cfg.echo().items() if k not in ("out_dir", "workers")}
        if {k: manifest["config"].get(k) for k in wanted} == wanted:
            return folder, _records(manifest), 0.0
    t0 = time.perf_counter()
    manifest = generate(cfg)
    return folder, _records(manifest), time.perf_counter() - t0


def _records(manifest: dict) -> int:
    return sum(ch["input_units"] for ch in manifest["channels"].values())


def runner_flags(mode: str, workers: int) -> list[str]:
    if mode == "in_memory":
        return ["--runner", "DirectRunner", "--direct_running_mode=in_memory", "--direct_num_workers=1"]
    return ["--runner", "DirectRunner", f"--direct_running_mode={mode}", f"--direct_num_workers={workers}"]


# ----------------------------------------------------------------------------------- the floor
def floor_key(record) -> tuple[str, dict | None]:
    """(person key, decoded record) of a raw record: its strongest raw identifier, else its position."""
    import orjson

    source, payload, error = record
    datum = payload
    if error is None and not isinstance(payload, dict):
        try:
            datum = orjson.loads(payload)
        except orjson.JSONDecodeError:
            datum = None
    if isinstance(datum, dict):
        for field in FLOOR_KEYS:
            value = datum.get(field)
            if value:
                return str(value), datum
        return str(datum.get("event_id") or source), datum
    return source, None


def _group_line(element) -> bytes:
    import orjson

    key, records = element
    return orjson.dumps({"person": key, "records": list(records)}, default=str).decode()


def build_floor(p, inputs: dict[str, list[str]], out_dir: str, split_bytes: int):
    """Today's (per-element) floor: every record is an element through the read, the shuffle and the write."""
    import apache_beam as beam

    from touchline.pipelines.batch import camel
    from touchline.transforms.sources import ReadChannelFiles

    reads = [p | f"Read{camel(channel)}" >> ReadChannelFiles(patterns, split_bytes) for channel, patterns in inputs.items()]
    return (
        reads
        | "Flatten" >> beam.Flatten()
        | "KeyByPerson" >> beam.Map(floor_key)
        | "GroupByPerson" >> beam.GroupByKey()
        | "ToJson" >> beam.Map(_group_line)
        | "Write" >> beam.io.WriteToText(os.path.join(out_dir, "floor"), file_name_suffix=".jsonl")
    )


def _bucketed_split(split, buckets: int):
    """A split -> (bucket of the person key, packed [(key, record)]) per bucket: the same reading and keying as
    the per-element floor, one element per split and bucket."""
    from touchline.transforms.batches import group
    from touchline.transforms.packing import pack
    from touchline.transforms.sources import read_range

    _source, path, start, end = split
    for key, records in group(((k, (k, d)) for k, d in map(floor_key, read_range((path, start, end)))), buckets).items():
        yield key, pack(records)


def _write_bucket(element, out_dir: str):
    """(bucket, [[(key, record)]]) -> one JSON Lines file of the bucket's groups (by person key)."""
    import orjson

    from touchline.transforms.packing import unpack

    bucket, blobs = element
    groups: dict = {}
    for blob in blobs:
        for key, record in unpack(blob):
            groups.setdefault(key, []).append(record)
    with open(os.path.join(out_dir, f"floor-{bucket:05d}.jsonl"), "wb") as fh:
        for key, records in groups.items():
            fh.write(orjson.dumps({"person": key, "records": records}, default=str) + b"\n")
    yield len(groups)


def build_coarse_floor(p, inputs: dict[str, list[str]], out_dir: str, split_bytes: int, buckets: int):
    """The coarse-element floor: the same read, keying, grouping and write as :func:`build_floor`, with
    batches keyed by bucket as the elements (the batch pipeline's data plane) -- what any batch
    pipeline over these files costs on this runner at least."""
    import apache_beam as beam

    from touchline.transforms.sources import ReadSources

    os.makedirs(out_dir, exist_ok=True)
    return (
        p
        | "ReadSources" >> ReadSources(inputs, split_bytes)
        | "KeyByBucket" >> beam.FlatMap(_bucketed_split, buckets)
        | "GroupByBucket" >> beam.GroupByKey()
        | "Write" >> beam.FlatMap(_write_bucket, out_dir)
    )


# ------------------------------------------------------------------------- one measured run
def _drain(pcolls, label: str):
    import apache_beam as beam

    return list(pcolls) | f"{label}All" >> beam.Flatten() | f"{label}Drop" >> beam.FlatMap(lambda _: ())


def build_prefix(p, plan, prefix: str):
    """The batch graph cut after ``prefix`` (see the module doc), ending in a step that drops everything."""
    from touchline.pipelines import batch
    from touchline.transforms.context import RunContext
    from touchline.transforms.dedup import DeduplicateTouchpoints
    from touchline.transforms.parse import DEAD_LETTERS, TOUCHPOINTS, ParseSplits
    from touchline.transforms.sources import ReadSources, read_range

    ctx = RunContext(run_id=plan.run_id, logical_date=plan.logical_date, hash_key_source=plan.hash_key_source,
                     buckets=plan.buckets)
    if prefix in ("identity", "experience"):
        model = plan.model if prefix == "experience" else None
        tables = batch.build_pipeline(p, plan.inputs, ctx, plan.split_bytes, plan.identity, {}, {}, model, plan.experience)
        return _drain(tables.values(), "Bench")
    import apache_beam as beam

    splits = p | "ReadSources" >> ReadSources(plan.inputs, plan.split_bytes)
    if prefix == "read":
        return _drain([splits | "Read" >> beam.Map(lambda split: sum(1 for _ in read_range(split[1:])))], "Bench")
    parsed = splits | "Parse" >> beam.ParDo(ParseSplits(ctx)).with_outputs(DEAD_LETTERS, main=TOUCHPOINTS)
    outs = [parsed[DEAD_LETTERS]]
    if prefix == "parse":
        outs.append(parsed[TOUCHPOINTS])
    elif prefix == "dedup":
        deduped = parsed[TOUCHPOINTS] | "Deduplicate" >> DeduplicateTouchpoints(ctx)
        outs.extend([deduped[TOUCHPOINTS], deduped[DEAD_LETTERS]])
    return _drain(outs, "Bench")


def run_one(kind: str, data: str, mode: str, workers: int, work: str, flags: list[str] | None = None) -> dict:
    """One measured run in this process: ``floor``, or a prefix of the batch graph (``full`` = touchline batch)."""
    from apache_beam.runners.runner import PipelineState

    from touchline.pipelines import batch
    from touchline.pipelines.options import parse_pipeline_args, resolve_batch
    from touchline.pipelines.runners import batch_pipeline

    warehouse = os.path.join(work, "bench.duckdb")
    argv = ["--input", data, "--warehouse", warehouse, "--hash_key_source", KEY_SOURCE, "--logical_date", LOGICAL_DATE,
            *runner_flags(mode, workers), *(flags or [])]
    t0 = time.perf_counter()
    if kind == "full":
        result = batch.run(argv)
        seconds = time.perf_counter() - t0
        return {"seconds": seconds, "pipeline_s": result.extra.get("pipeline_s"), "commit_s": result.extra.get("commit_s"),
                "touchpoints": result.rows_written.get("touchpoints"), "rows_written": result.rows_written}
    options = parse_pipeline_args(argv, "pipeline_bench")
    plan = resolve_batch(options)
    try:
        plan.warehouse.init()
        p = batch_pipeline(options)
        if kind == "floor":
            build_floor(p, plan.inputs, os.path.join(work, "floor"), plan.split_bytes)
        elif kind == "coarse_floor":
            build_coarse_floor(p, plan.inputs, os.path.join(work, "coarse_floor"), plan.split_bytes, plan.buckets)
        else:
            build_prefix(p, plan, kind)
        state = p.run().wait_until_finish()
        if state != PipelineState.DONE:
            raise RuntimeError(f"{kind} pipeline ended in state {state}")
    finally:
        plan.warehouse.close()
    return {"seconds": time.perf_counter() - t0}


# ------------------------------------------------------------------------------- measuring
def _tree_rss_kb(root: int) -> tuple[int, int]:
    """(sum, max) of VmRSS in KiB over ``root`` and its descendants."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", encoding="ascii", errors="replace") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(name))
    total = biggest = 0
    stack = [root]
    while stack:
        pid = stack.pop()
        stack.extend(children.get(pid, ()))
        try:
            with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        kb = int(line.split()[1])
                        total += kb
                        biggest = max(biggest, kb)
                        break
        except OSError:
            continue
    return total, biggest


def measure_command(cmd: list[str], max_rss_mb: int = 0, env: dict | None = None) -> dict:
    """Run ``cmd``; its wall time, stdout, stderr, return code and the peak RSS of its process tree.
    With ``max_rss_mb`` the run is stopped when its tree grows beyond that (a shared machine must not
    run out of memory): ``aborted`` then says when."""
    peak = [0, 0]
    aborted = []
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            total, biggest = _tree_rss_kb(proc.pid)
            peak[0], peak[1] = max(peak[0], total), max(peak[1], biggest)
            if max_rss_mb and total > max_rss_mb * 1024 and not aborted:
                aborted.append(f"stopped after {time.perf_counter() - started:.0f} s at {total / 1024:,.0f} MB (--max_rss_gb)")
                _kill_tree(proc.pid)
            stop.wait(0.2)

    started = time.perf_counter()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        out, err = proc.communicate()
    finally:
        stop.set()
        sampler.join()
    return {"wall_s": time.perf_counter() - started, "stdout": out, "stderr": err, "returncode": proc.returncode,
            "aborted": aborted[0] if aborted else "", "peak_rss_mb": round(peak[0] / 1024), "peak_max_mb": round(peak[1] / 1024)}


def measure(kind: str, data: str, mode: str, workers: int, extra: list[str] | None = None, max_rss_mb: int = 0) -> dict:
    """Run ``kind`` in a fresh process; its figures plus the peak RSS of its process tree."""
    work = tempfile.mkdtemp(prefix="touchline-pbench-")
    cmd = [sys.executable, "-m", "benchmarks.pipeline_bench", "--one", kind, "--input", data, "--mode", mode,
           "--workers", str(workers), "--work", work, *(extra or [])]
    try:
        run = measure_command(cmd, max_rss_mb)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    peaks = {"peak_rss_mb": run["peak_rss_mb"], "peak_max_mb": run["peak_max_mb"]}
    if run["aborted"]:
        return {"seconds": float("nan"), "aborted": run["aborted"], **peaks,
                "pipeline_s": float("nan"), "commit_s": float("nan"), "touchpoints": 0}
    if run["returncode"] != 0:
        raise RuntimeError(f"{kind} ({mode}) failed:\n{run['stderr'][-3000:]}")
    result = json.loads(run["stdout"].strip().splitlines()[-1])
    result.update(peaks)
    return result


def _kill_tree(root: int) -> None:
    """SIGKILL the measured process and its descendants (only the tree this benchmark started)."""
    import signal

    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", encoding="ascii", errors="replace") as fh:
                    children.setdefault(int(fh.read().rsplit(")", 1)[1].split()[1]), []).append(int(name))
            except (OSError, IndexError, ValueError):
                continue
    stack, tree = [root], []
    while stack:
        pid = stack.pop()
        tree.append(pid)
        stack.extend(children.get(pid, ()))
    for pid in tree:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def machine() -> str:
    import platform

    cpu = platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            names = [line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    try:
        import apache_beam

        beam_version = apache_beam.__version__
    except ImportError:
        beam_version = "?"
    return (f"{cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}, apache-beam {beam_version}, "
            f"{platform.system()} {platform.release()}")


def parse_size(text: str) -> int:
    return int(float(text))


def profile(data: str, top: int, out: str | None = None) -> None:
    import cProfile
    import pstats

    work = tempfile.mkdtemp(prefix="touchline-pbench-")
    try:
        prof = cProfile.Profile()
        prof.enable()
        run_one("full", data, "in_memory", 1, work)
        prof.disable()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if out:
        prof.dump_stats(out)  # for pstats / snakeviz: callers, callees
        print(f"profile written to {out}")
    stats = pstats.Stats(prof)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)


def stage_times(data: str, top: int, mode: str = "in_memory", workers: int = 1) -> None:
    """One ``full`` run with the runner's fused stages timed (wall seconds per stage, bundles
    included), printed largest first with the transforms each stage holds."""
    from apache_beam.runners.portability.fn_api_runner import fn_runner

    spent: dict[str, list] = {}
    original = fn_runner.FnApiRunner._execute_bundle

    def timed(self, runner_execution_context, bundle_context_manager, bundle_input):
        t0 = time.perf_counter()
        try:
            return original(self, runner_execution_context, bundle_context_manager, bundle_input)
        finally:
            stage = bundle_context_manager.stage
            entry = spent.setdefault(stage.name, [0.0, [t.unique_name for t in stage.transforms]])
            entry[0] += time.perf_counter() - t0

    fn_runner.FnApiRunner._execute_bundle = timed
    work = tempfile.mkdtemp(prefix="touchline-pbench-")
    try:
        t0 = time.perf_counter()
        r = run_one("full", data, mode, workers, work)
        total = time.perf_counter() - t0
    finally:
        fn_runner.FnApiRunner._execute_bundle = original
        shutil.rmtree(work, ignore_errors=True)
    in_stages = sum(v[0] for v in spent.values())
    print(f"full run {total:.1f} s (pipeline {r['pipeline_s']:.1f} s, commit {r['commit_s']:.1f} s); "
          f"{len(spent)} stages ran {in_stages:.1f} s; the rest is graph construction, snapshots and commit")
    groups: dict[str, float] = {}
    for name, (seconds, transforms) in spent.items():
        step = _step_of(transforms)
        groups[step] = groups.get(step, 0.0) + seconds
    print("seconds per top-level step (stages attributed to the step of their first user transform):")
    for step, seconds in sorted(groups.items(), key=lambda kv: -kv[1]):
        print(f"  {seconds:7.1f} s  {100 * seconds / total:5.1f} %  {step}")
    print(f"top {top} stages:")
    for name, (seconds, transforms) in sorted(spent.items(), key=lambda kv: -kv[1][0])[:top]:
        user = [t for t in transforms if t and not t.startswith("ref_")]
        print(f"  {seconds:7.1f} s  {', '.join(user[:4])}{' ...' if len(user) > 4 else ''}")


def _step_of(transforms: list[str]) -> str:
    """The pipeline step a fused stage belongs to: the first two label levels of its first named transform."""
    for name in transforms:
        if name and "/" in name:
            parts = name.split("/")
            return "/".join(parts[:2]) if parts[0] in ("Identity", "Experience") else parts[0]
    return transforms[0] if transforms else "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pipeline_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1e5", help="input records per run, comma-separated (default 1e5; e.g. 1e5,1e6,1e7)")
    parser.add_argument("--modes", default=",".join(MODES), help=f"runner modes, comma-separated (default {','.join(MODES)})")
    parser.add_argument("--workers", type=int, default=2, help="SDK worker processes of multi_processing (default 2)")
    parser.add_argument("--runs", default="floor,coarse_floor,full",
                        help="what to run per size and mode: floor (per element), coarse_floor (batches by bucket), full "
                             "(default: all three)")
    parser.add_argument("--stages", action="store_true", help="also run every prefix of the graph (stage breakdown)")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="profile one in-process full run; print the top N")
    parser.add_argument("--profile_out", default=None, metavar="FILE", help="with --profile: also save the raw cProfile stats")
    parser.add_argument("--stage_times", type=int, default=0, metavar="N",
                        help="time the runner's fused stages in one in-process full run; print the top N")
    parser.add_argument("--data", default=os.path.join("data", "bench"), help="where generated inputs are kept (default data/bench)")
    parser.add_argument("--max_rss_gb", type=float, default=16.0,
                        help="stop a run whose process tree grows beyond this many GiB (default 16; 0 = no limit)")
    parser.add_argument("--flags", default="", help="extra `touchline batch` flags for every run, e.g. '--buckets=64'")
    parser.add_argument("--json", default=None, help="also append every result as a JSON line to this file")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--input", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="in_memory", help=argparse.SUPPRESS)
    parser.add_argument("--work", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.one, args.input, args.mode, args.workers, args.work, shlex.split(args.flags))))
        return 0
    sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    kinds = [k.strip() for k in args.runs.split(",") if k.strip()]
    if args.stages:
        kinds = ["floor", "coarse_floor", *PREFIXES]
    print(f"batch pipeline benchmark, {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, {machine()}", flush=True)
    for size in sizes:
        data, records, gen_s = ensure_data(args.data, size)
        note = f"generated in {gen_s:.1f} s" if gen_s else "reused"
        print(f"\n== {records:,} input records ({persons_for(size):,} persons x {DAYS} days, {note}: {data})", flush=True)
        if args.profile:
            profile(data, args.profile, args.profile_out)
            continue
        if args.stage_times:
            stage_times(data, args.stage_times)
            continue
        print("mode  run  seconds  events/s  peak RSS MB (tree)  peak MB (largest process)  load avg before -> after  notes")
        results = {}
        for mode in modes:
            for kind in kinds:
                before = load()
                r = measure(kind, data, mode, args.workers, [f"--flags={args.flags}"], max_rss_mb=int(args.max_rss_gb * 1024))
                r.update(size=size, records=records, mode=mode, run=kind, load_before=before, load_after=load())
                results[(mode, kind)] = r
                notes = r.get("aborted", "")
                if kind == "full" and not notes:
                    notes = f"pipeline {r['pipeline_s']:.1f} s, commit {r['commit_s']:.1f} s, {r['touchpoints']:,} touchpoints"
                    for name, label in (("floor", "full/floor"), ("coarse_floor", "full/coarse floor")):
                        floor = results.get((mode, name))
                        if floor and not floor.get("aborted"):
                            notes += f", {label} {r['seconds'] / floor['seconds']:.2f}"
                print(f"{mode}  {kind}  {r['seconds']:.1f}  {records / r['seconds']:,.0f}  {r['peak_rss_mb']:,}  "
                      f"{r['peak_max_mb']:,}  {r['load_before']} -> {r['load_after']}  {notes}", flush=True)
                if args.json:
                    with open(args.json, "a", encoding="utf-8") as fh:
                        fh.write(json.dumps(r) + "\n")
            if args.stages:
                print(f"stage breakdown ({mode}): marginal seconds of each step (prefix minus the one before)")
                previous = 0.0
                for kind in PREFIXES:
                    s = results[(mode, kind)]["seconds"]
                    print(f"  {kind:<10} +{s - previous:6.1f} s   (prefix {s:.1f} s)")
                    previous = s
    return 0


if __name__ == "__main__":
    sys.exit(main())
