"""The production graphs, built without running them: for the checked-in step labels (Dataflow's
``--update`` maps steps by label), pickling and key-coder checks, and the docs.

``batch_graph()`` is the batch pipeline as a Dataflow template builds it -- every built-in channel
read from files, every stored-state input present, BigQuery staging and the ``CommitRun`` step;
``stream_graph()`` is the streaming pipeline with its Pub/Sub read and warehouse writer. Nothing
is read or written: sources are declared, not opened.
"""

from __future__ import annotations

import datetime as dt
import functools

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

LOGICAL_DATE = dt.date(2026, 10, 31)


def _options(*flags: str) -> PipelineOptions:
    return PipelineOptions(["--runner=DirectRunner", *flags])


def batch_graph() -> beam.Pipeline:
    from touchline.transforms import channels
    from touchline.transforms.context import RunContext
    from touchline.transforms.experience import ExperienceSettings
    from touchline.transforms.identity import IdentityConfig
    from touchline.transforms.scoring.model import load_model
    from touchline.transforms.warehouse.bigquery import BigQueryWarehouse
    from touchline.transforms.warehouse.state import FIRST_READS, ReadStoredState, StateRequest

    from . import batch

    model, settings = load_model(None), ExperienceSettings()
    ctx = RunContext(run_id="graph", logical_date=LOGICAL_DATE, hash_key_source="demo")
    p = beam.Pipeline(options=_options())
    inputs = {name: [f"gs://bucket/events/{name}/*"] for name in channels.names()}
    # a steady-state run (stored state present): every state and history read is in the graph
    warehouse = BigQueryWarehouse("project", "touchline")
    state = {name: beam.Create([]) for name in batch.AT_LAUNCH}
    day = ctx.logical_day
    window = settings.window_start(day, model)
    request = StateRequest(names=FIRST_READS, history_since=day - 30,
                           window=window, earliest=settings.earliest_day(day), moved_before=window)
    stored = ReadStoredState(warehouse.url, request, "gs://bucket/touchline-staging/graph")
    tables = batch.build_pipeline(p, inputs, ctx, 64 << 20, IdentityConfig(), state, None, model, settings, stored)
    run_row = {"run_id": "graph", "metrics": []}
    batch.stage_tables(tables, warehouse, "gs://bucket/touchline-staging/graph",
                       batch.CommitRun(warehouse.url, "gs://bucket/touchline-staging/graph", tuple(tables), run_row))
    return p


def stream_graph() -> beam.Pipeline:
    from touchline.transforms.warehouse.stream_writer import WriteTablesStreaming

    from . import streaming
    from .options import StreamPlan

    plan = StreamPlan(subscription="projects/project/subscriptions/touchline-events",
                      warehouse_url="bigquery://project.touchline", hash_key_source="demo", local=False,
                      identity_refresh=600.0)  # the --identity_refresh default (10m): the side input refreshes
    p = beam.Pipeline(options=_options("--streaming"))
    tables = streaming.build_pipeline(p, plan, streaming.context_for(plan))
    _ = tables | "WriteWarehouse" >> WriteTablesStreaming(plan.warehouse_url, plan.write_batch_size, plan.write_max_latency)
    return p


GRAPHS = {"batch": batch_graph, "stream": stream_graph}


@functools.cache
def built(name: str) -> beam.Pipeline:
    """The graph, built once per process (building the batch graph takes seconds). Do not apply
    more transforms to it."""
    return GRAPHS[name]()


def applied_transforms(p: beam.Pipeline) -> list:
    """Every applied transform (composites and leaves), in graph order, root excluded."""
    out = []

    class Visitor(beam.pipeline.PipelineVisitor):
        def enter_composite_transform(self, node):
            if node.full_label:
                out.append(node)

        def visit_transform(self, node):
            out.append(node)

    p.visit(Visitor())
    return out


def step_labels(p: beam.Pipeline) -> list[str]:
    return [node.full_label for node in applied_transforms(p)]
