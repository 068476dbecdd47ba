"""The streaming pipeline: Pub/Sub -> the batch transforms -> small keyed warehouse transactions.

    touchline stream --subscription projects/P/subscriptions/touchline-events --warehouse touchline.duckdb
                     [--allowed_lateness 1d] [--dedup_horizon 1d] [--runner DataflowRunner ...]

Graph (stable labels; Dataflow's update maps steps by label)::

    ReadPubsub          ReadFromPubSub(with_attributes, timestamp_attribute=event_time)
    DecodeMessages      -> (channel, (source, payload, error))        \\__ dead letters: unknown_channel
    AllowedLateness     explicit too_late check against the watermark   \\__ dead letters: too_late
    RouteByChannel      one branch per channel
    Parse<Channel>      the batch ParseTouchpoints, unchanged          \\__ dead letters: parse reasons
    FlattenTouchpoints
    Deduplicate         first version per event_id within the horizon   \\__ dead letters: conflicting_duplicate
    IdentitySnapshots   identity_map for the side input (read at start locally; PeriodicImpulse on Dataflow)
    AttributeIdentity   person_id from identity_map + the event's own links (provisional ids for unknown persons)
    Experience          per person: state + event-time timers -> score updates, journeys once closed
    FlattenDeadLetters, StampLogicalDate
    WriteWarehouse      GroupIntoBatches per table -> Warehouse.write_rows (one transaction per batch)

``build_pipeline`` returns the table PCollections (tests feed it a TestStream of messages);
``start`` runs it and returns a :class:`StreamHandle`; ``run`` is the CLI: it runs locally until
Ctrl-C or ``--stop_after`` (printing progress from the warehouse), or launches on Dataflow and exits.
See docs/streaming.md for the batch / stream contract.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from dataclasses import dataclass, field

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.runners.runner import PipelineState

from touchline.transforms import channels
from touchline.transforms.context import RunContext
from touchline.transforms.dedup_streaming import DeduplicateTouchpointsStreaming
from touchline.transforms.experience_streaming import ExperienceStreaming
from touchline.transforms.identity.lookup import AttributeStreaming, IdentitySnapshots
from touchline.transforms.lateness import LatenessGate
from touchline.transforms.parse import DEAD_LETTERS, TOUCHPOINTS, ParseTouchpoints
from touchline.transforms.scoring.model import load_model
from touchline.transforms.pubsub import RECORDS, DecodeMessages, ReadTouchpointMessages, RouteByChannel
from touchline.transforms.warehouse import open_warehouse
from touchline.transforms.warehouse.stream_writer import WriteTablesStreaming, shared_warehouse

from .batch import camel
from .options import ConfigError, StreamPlan, parse_pipeline_args, resolve_stream

TABLES = ("touchpoints", "dead_letters", "journeys", "person_scores_daily", "person_scores_current")
#: replace_scope tables the stream merges by key (complete rows, never retracted; see Warehouse.write_rows)
UPSERT_TABLES = ("journeys", "person_scores_daily", "person_scores_current")
MICROS_PER_DAY = 86_400_000_000


class _StampLogicalDate(beam.DoFn):
    """A streaming dead letter's logical date is the UTC day of its message's event time (the same
    day for every redelivery of a message), not the day some run happened to start."""

    def process(self, row, timestamp=beam.DoFn.TimestampParam):
        yield {**row, "logical_date": timestamp.micros // MICROS_PER_DAY}


def context_for(plan: StreamPlan) -> RunContext:
    import datetime as dt

    return RunContext(run_id=plan.run_id, logical_date=dt.datetime.now(dt.timezone.utc).date(),
                      hash_key_source=plan.hash_key_source, pipeline="stream")


def build_pipeline(p: beam.Pipeline, plan: StreamPlan, ctx: RunContext, source: beam.PTransform | None = None) -> dict[str, beam.PCollection]:
    """Compose the streaming graph; returns ``{table name: PCollection of rows}``.

    ``source`` replaces the Pub/Sub read (tests pass a TestStream of ``PubsubMessage``s)."""
    messages = p | "ReadPubsub" >> (source or ReadTouchpointMessages(plan.subscription, plan.timestamp_attribute))
    decoded = messages | "DecodeMessages" >> DecodeMessages(plan.subscription, ctx)
    gated = decoded[RECORDS] | "AllowedLateness" >> LatenessGate(plan.allowed_lateness, ctx, plan.lateness_shards)
    routed = gated[RECORDS] | "RouteByChannel" >> RouteByChannel(channels.names())
    dead_letters = [decoded[DEAD_LETTERS], gated[DEAD_LETTERS]]
    parsed_touchpoints = []
    for channel, raw in routed.items():
        parsed = raw | f"Parse{camel(channel)}" >> ParseTouchpoints(channel, ctx)
        parsed_touchpoints.append(parsed[TOUCHPOINTS])
        dead_letters.append(parsed[DEAD_LETTERS])
    touchpoints = parsed_touchpoints | "FlattenTouchpoints" >> beam.Flatten()
    deduped = touchpoints | "Deduplicate" >> DeduplicateTouchpointsStreaming(ctx, plan.dedup_horizon)
    dead_letters.append(deduped[DEAD_LETTERS])
    snapshots = p | "IdentitySnapshots" >> IdentitySnapshots(plan.warehouse_url, 0.0 if plan.local else plan.identity_refresh)
    attributed = deduped[TOUCHPOINTS] | "AttributeIdentity" >> AttributeStreaming(snapshots, ctx.hash_key_source, plan.blocklist)
    experience = attributed | "Experience" >> ExperienceStreaming(plan.model or load_model(None), plan.journey_gap_hours,
                                                                  plan.allowed_lateness)
    return {
        "touchpoints": attributed,
        "dead_letters": dead_letters | "FlattenDeadLetters" >> beam.Flatten() | "StampLogicalDate" >> beam.ParDo(_StampLogicalDate()),
        **experience,
    }


# -- running ---------------------------------------------------------------------------------------
def _close_direct_pubsub_clients(subscription: str) -> None:
    """Abort the DirectRunner's in-flight Pub/Sub pull of a cancelled pipeline.

    Beam's DirectRunner pulls with a 30 s timeout and acknowledges what a pull returns at once; a
    pull still waiting when the pipeline is cancelled would otherwise acknowledge messages nobody
    processes. Closing its client cancels the RPC. (Beam internals, pinned apache-beam version.)"""
    try:
        from apache_beam.runners.direct.transform_evaluator import _PubSubReadEvaluator
    except ImportError:  # pragma: no cover -- another Beam layout: nothing to close
        return
    with _PubSubReadEvaluator._subscriber_client_cache_lock:
        cached = list(_PubSubReadEvaluator._subscriber_client_cache.items())
    for applied, client in cached:
        source = getattr(getattr(applied, "transform", None), "_source", None)
        if getattr(source, "full_subscription", None) == subscription:
            client.close()


@dataclass
class StreamHandle:
    """A running stream: its Beam result, what it reads, and how to stop it."""

    result: object
    plan: StreamPlan
    started: float = field(default_factory=time.time)
    notes: list[str] = field(default_factory=list)
    error: BaseException | None = None
    _finished: threading.Event = field(default_factory=threading.Event)
    _stopping: bool = False

    def __post_init__(self):
        if self.plan.local:
            # The DirectRunner updates its state only inside wait_until_finish: watch it from a thread
            # so a failing pipeline shows as FAILED (with its exception) while we poll.
            threading.Thread(target=self._watch, name="touchline-stream-watch", daemon=True).start()

    def _watch(self) -> None:
        try:
            self.result.wait_until_finish()
        except BaseException as exc:  # noqa: BLE001 -- kept for the caller, who decides
            self.error = exc
        finally:
            self._finished.set()

    def wait(self, timeout: float | None = None):
        """Wait until the stream ends by itself (a bounded test source) or fails; returns its state.
        (Never call the result's wait_until_finish yourself: locally, this handle already does.)"""
        if self.plan.local:
            self._finished.wait(timeout)
        else:
            self.result.wait_until_finish()
        return self.state

    @property
    def state(self):
        if self._stopping:
            return PipelineState.CANCELLED
        if self.error is not None:
            return PipelineState.FAILED
        return self.result.state

    def stop(self, wait: bool = True) -> None:
        """Stop the stream. Locally: abort the runner's pending Pub/Sub pull (it would otherwise hold the
        runner for up to 30 s and acknowledge what it receives), then cancel; with ``wait``, return
        once the runner's worker has exited, so no pull of this run is open when the next one starts.
        Messages it acknowledged but had not written come again with the next start's replay."""
        if self._stopping:
            return
        failed = self.error is not None
        self._stopping = True
        if not self.plan.local:
            if not PipelineState.is_terminal(self.result.state):
                self.result.cancel()
            return
        # The aborted pull and the cancel make the DirectRunner log bundle failures: expected here.
        quiet = logging.getLogger("apache_beam.runners.direct")
        level = quiet.level

        def cancel():
            try:
                if not failed and not PipelineState.is_terminal(self.result.state):
                    self.result.cancel()
            finally:
                quiet.setLevel(level)

        quiet.setLevel(logging.CRITICAL)
        _close_direct_pubsub_clients(self.plan.subscription)
        if wait:
            cancel()
        else:
            threading.Thread(target=cancel, name="touchline-stream-stop", daemon=True).start()


def _ensure_streaming(options: PipelineOptions) -> None:
    standard = options.view_as(StandardOptions)
    standard.streaming = True
    if not standard.runner:
        # Named explicitly: Beam's default would first try to download the Prism runner.
        standard.runner = "DirectRunner"


def start(plan: StreamPlan, options: PipelineOptions, source: beam.PTransform | None = None) -> StreamHandle:
    """Prepare the warehouse (and the replay point, locally) and start the stream; returns at once."""
    _ensure_streaming(options)
    if plan.local:
        # The process-wide handle the pipeline's writer uses, opened before anything else touches
        # the file, so DuckDB's instance for it lives as long as the process (see shared_warehouse).
        shared = shared_warehouse(plan.warehouse_url)
        with shared.lock:
            shared.warehouse.init()
    else:
        warehouse = open_warehouse(plan.warehouse_url)
        try:
            warehouse.init()
        finally:
            warehouse.close()
    notes = []
    if plan.replay and source is None:
        from . import pubsub_admin

        client = pubsub_admin.subscriber()
        try:
            notes.append(pubsub_admin.replay_point(client, plan.subscription, reset=plan.reset_replay_point))
        finally:
            client.close()
    if plan.local:
        notes.append("local runner: the watermark is wall-clock time (Beam's DirectRunner Pub/Sub source), so replayed "
                     "history older than --allowed_lateness becomes too_late dead letters")
    ctx = context_for(plan)
    p = beam.Pipeline(options=options)
    tables = build_pipeline(p, plan, ctx, source)
    _ = tables | "WriteWarehouse" >> WriteTablesStreaming(plan.warehouse_url, plan.write_batch_size, plan.write_max_latency,
                                                                     upsert=UPSERT_TABLES)
    return StreamHandle(result=p.run(), plan=plan, notes=notes)


def warehouse_counts(url: str) -> dict[str, int]:
    """Rows per table and dead letters per reason, read from the warehouse (the DirectRunner's
    streaming counters only reflect each step's first bundle; see docs/streaming.md)."""
    warehouse = open_warehouse(url)
    try:
        out = {"touchpoints": warehouse.query("SELECT count(*) FROM touchpoints")[0][0]}
        for reason, n in warehouse.query("SELECT reason, count(*) FROM dead_letters GROUP BY 1 ORDER BY 1"):
            out[f"dead_letters.{reason}"] = n
        for table in ("person_scores_current", "journeys"):
            out[table] = warehouse.query(f"SELECT count(*) FROM {table}")[0][0]
        return out
    finally:
        warehouse.close()


def _status(counts: dict[str, int]) -> str:
    dead = {k.split(".", 1)[1]: v for k, v in counts.items() if k.startswith("dead_letters.")}
    detail = ", ".join(f"{k} {v}" for k, v in dead.items())
    return (f"touchpoints {counts['touchpoints']}, dead letters {sum(dead.values())}" + (f" ({detail})" if detail else "")
            + f", current scores {counts.get('person_scores_current', 0)}, journeys {counts.get('journeys', 0)}")


def run(argv: list[str], prog: str = "touchline stream", out=None, status_every: float = 10.0) -> StreamHandle:
    out = out or sys.stdout
    options = parse_pipeline_args(argv, prog)
    plan = resolve_stream(options)
    handle = start(plan, options)
    for note in handle.notes:
        print(note, file=out, flush=True)
    if not plan.local:
        job = getattr(handle.result, "job_id", lambda: None)()
        print(f"launched streaming job {job or ''} reading {plan.subscription}; stop it with drain "
              f"(gcloud dataflow jobs drain JOB_ID) so nothing in flight is lost", file=out)
        return handle
    print(f"streaming {plan.subscription} -> {plan.warehouse_url} (Ctrl-C to stop)", file=out, flush=True)
    deadline = time.time() + plan.stop_after if plan.stop_after else None
    try:
        while not PipelineState.is_terminal(handle.state):
            time.sleep(min(status_every, max(0.1, deadline - time.time())) if deadline else status_every)
            if PipelineState.is_terminal(handle.state):
                break
            print(_status(warehouse_counts(plan.warehouse_url)), file=out, flush=True)
            if deadline and time.time() >= deadline:
                break
    except KeyboardInterrupt:
        print("stopping ...", file=out, flush=True)
    finally:
        state = PipelineState.FAILED if handle.error is not None else handle.state
        handle.stop()
    if state == PipelineState.FAILED:
        raise RuntimeError(f"the streaming pipeline failed: {handle.error}") from handle.error
    print(f"stopped. {_status(warehouse_counts(plan.warehouse_url))}", file=out, flush=True)
    return handle


__all__ = ["build_pipeline", "start", "run", "StreamHandle", "ConfigError", "TABLES", "warehouse_counts", "context_for"]
