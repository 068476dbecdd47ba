"""Helpers for identity tests: synthetic touchpoints with hashed identifiers, and running the
``Identity`` transform on the DirectRunner with previous state, reading every output back."""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid

import apache_beam as beam

from touchline import schemas
from touchline.pipelines.batch import counters
from touchline.transforms.context import RunContext
from touchline.transforms.identifiers import DEMO_KEY, Hasher
from touchline.transforms.identity import Identity, IdentityConfig

from .batch_io import ToRows, create_table, create_touchpoints
from .conftest import beam_pipeline

HASHER = Hasher(DEMO_KEY)
DAY = 86_400_000_000
T0 = 20_727 * DAY  # 2026-10-01 00:00 UTC


def ctx(day: str = "2026-10-31", run: str = "run-1") -> RunContext:
    return RunContext(run_id=run, logical_date=dt.date.fromisoformat(day), hash_key_source="demo")


def h(kind: str, value: str) -> str:
    ident = HASHER.identifier(kind, value)
    assert ident is not None
    return ident["id_hash"]


def tp(event_id: str, day: float = 0, channel: str = "web", role: str = "customer", person_id=None, **ids) -> dict:
    """A touchpoint; ``ids`` are clear-text identifiers by kind (hashed here, as the parse step does)."""
    identifiers = []
    for kind, value in ids.items():
        ident = HASHER.identifier(kind, value)
        if ident is not None and ident not in identifiers:
            identifiers.append(ident)
    t = T0 + int(day * DAY)
    return {"event_id": event_id, "channel": channel, "event_type": "page_view", "event_time": t, "event_date": t // DAY,
            "person_id": person_id, "role": role, "identifiers": identifiers, "session_id": None, "ticket_id": None,
            "order_id": None, "survey_kind": None, "survey_score": None, "amount": None, "currency": None,
            "attributes": {}, "source": f"test@{event_id}"}


def run_identity(tmp_path, touchpoints, state=None, config=None, context=None, dead_letters=(), name="run"):
    """Run Identity once; returns ({output table: [rows]}, counters)."""
    out = os.path.join(str(tmp_path), name)
    context = context or ctx()
    p = beam_pipeline()
    inputs = {"touchpoints": create_touchpoints(p, "Touchpoints", touchpoints, context.buckets),
              "dead_letters": p | "DeadLetters" >> beam.Create([("test", list(dead_letters))] if dead_letters else [])}
    for table, rows in (state or {}).items():
        inputs[table] = create_table(p, f"State_{table}", "touchpoints" if table == "history" else table, rows)
    outputs = inputs | "Identity" >> Identity(context, config or IdentityConfig(max_rounds=4))
    for table, batches in outputs.items():
        if table in ("scopes", "stored"):  # the experience stage's inputs, not tables
            continue
        (batches | f"Rows_{table}" >> ToRows(table)
         | f"Write_{table}" >> beam.ParDo(_WriteJson(os.path.join(out, table))))
    result = p.run()
    result.wait_until_finish()
    read = {}
    for table in (t for t in outputs if t not in ("scopes", "stored")):
        folder = os.path.join(out, table)
        read[table] = []
        for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
            with open(os.path.join(folder, name), encoding="utf-8") as fh:
                read[table] += [json.loads(line) for line in fh]
    return read, counters(result)


class _WriteJson(beam.DoFn):
    """Rows -> JSON lines, one file per bundle (a light test sink; the pipeline's own sinks are tested elsewhere)."""

    def __init__(self, folder: str):
        self._folder = folder

    def start_bundle(self):
        self._lines = []

    def process(self, row):
        self._lines.append(json.dumps(row, sort_keys=True, default=str))

    def finish_bundle(self):
        if self._lines:
            os.makedirs(self._folder, exist_ok=True)
            with open(os.path.join(self._folder, uuid.uuid4().hex), "w", encoding="utf-8") as fh:
                fh.write("\n".join(self._lines) + "\n")


def carry(state: dict | None, outputs: dict, touchpoints_history: bool = True) -> dict:
    """The stored state after committing ``outputs`` onto ``state`` (merge by key, replace, insert_if_absent)."""
    state = {k: list(v) for k, v in (state or {}).items()}
    for table, rows in outputs.items():
        name = "history" if table == "touchpoints" else table
        if table in (schemas.RECOMPUTE_SCOPE, "dead_letters") or (name == "history" and not touchpoints_history):
            continue
        spec = schemas.table_schema(table)
        key = lambda r: tuple(r[k] for k in spec.key)  # noqa: E731
        if spec.write == "replace":
            state[name] = list(rows)
            continue
        current = {key(r): r for r in state.get(name, [])}
        for row in rows:
            if spec.write == "merge" or key(row) not in current:
                current[key(row)] = row
        state[name] = list(current.values())
    return state


def person_of(outputs_or_state: dict, kind: str, value: str) -> str | None:
    rows = {r["id_hash"]: r for r in outputs_or_state["identity_map"]}
    return rows[h(kind, value)]["person_id"]


def persons_by_event(touchpoints) -> dict[str, str | None]:
    return {t["event_id"]: t["person_id"] for t in touchpoints}
