"""The stored state a run can affect, read by filtered queries after the run's keys are known.

A daily run's input touches a few thousand persons; the warehouse holds months of everyone. So a
batch run does not snapshot whole tables at launch: once its touchpoints are parsed and
deduplicated, it writes its **run keys** -- the identifier hashes and event ids it saw
(:class:`WriteRunKeys`) -- and one step (:class:`ReadStoredState`) has the warehouse select, by
semi-joins against those keys staged as tables, exactly the rows the run can affect:

1. **Persons.** ``P`` = the persons of the run's identifiers (``identity_map``), closed over the
   stored graph: a person linked (through a link between two linked identifiers) to a person in
   ``P`` is in ``P`` -- a component that conflict splits cut in two persons is read whole.
2. **Identifiers.** ``A`` = the run's identifiers and every identifier of ``P``: their
   ``identity_map`` rows and every ``identity_links`` row touching them (so each one's degree and
   unique-id neighbours are complete, and the guards judge it exactly as a full rebuild would);
   quarantined identifiers at the far end of those links keep their stored verdict
   (``identity_excluded``: they cannot have changed, as nothing new links them).
3. **Touchpoints** of the lookback window whose stored person is in ``P`` or whose event this run
   has again (a replay, e.g. of a stream's provisional person); their persons join the experience
   persons ``E``, and their identifiers join the run's (then 1-3 again, until nothing changes: a
   touchpoint attributed in this run always has all its identifiers' components read).
4. ``person_merges`` rows pointing at persons of ``P``; ``person_scores_daily`` / ``_current``
   rows of ``E`` (by the score lookback); and the survey answers of the read window of everyone
   else (``history_surveys``: survey aggregates are per day over all persons).

``mode="full"`` reads what a from-scratch recompute reads instead (every row in the windows): the
reference the incremental reads are tested against, and the way to apply a changed identity
configuration (degree caps, blocklist) to the whole stored graph. Results are the same either way
(tests/test_incremental.py); the rows each read returned are counted (``touchline/state.<name>.rows``)
and land in ``pipeline_runs``. What a run scans: docs/warehouse.md.

The queries run through a :class:`Session` of the warehouse (DuckDB: temporary tables of one
connection; BigQuery: scratch tables of the run, loaded from the key files and dropped after).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
import apache_beam as beam
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from ..labels import camel
from ..packing import unpack
from .staging import _ReadTables

log = logging.getLogger("touchline")

#: what a run reads: name -> table its rows have the shape of
SHAPES = {
    "identity_map": "identity_map",
    "identity_links": "identity_links",
    "identity_excluded": "identity_map",
    "person_merges": "person_merges",
    "history": "touchpoints",
    "history_surveys": "touchpoints",
    "history_daily": "person_scores_daily",
    "history_current": "person_scores_current",
}
#: a safety bound on the closure rounds (each round adds what the previous one found)
MAX_ROUNDS = 50
NAMESPACE = "touchline"


@dataclass(frozen=True)
class StateRequest:
    """What one run reads (days since the epoch). ``names``: the reads the graph has inputs for
    (tables with rows at launch); ``history_since`` None: no stored touchpoints are read;
    ``window``: the first day of the experience stage's read window (None: no experience stage)."""

    names: tuple[str, ...]
    mode: str = "affected"
    history_since: int | None = None
    window: int | None = None
    earliest: int | None = None

    def __post_init__(self):
        if self.mode not in ("affected", "full"):
            raise ValueError(f"state mode must be affected or full, got {self.mode!r}")


def _date(day: int) -> str:
    import datetime as dt

    return f"DATE '{(dt.date(1970, 1, 1) + dt.timedelta(days=day)).isoformat()}'"


class Session:
    """SQL a warehouse runs for :func:`read_state` (implemented per warehouse).

    ``t(name)`` is how SQL names a scratch table; ``create`` makes (or replaces) one from a query;
    ``load_keys`` makes one of a single string column from key files; ``export`` writes a query's
    rows to snapshot files of a table's shape and returns them; ``unnest_ids(source)`` is a query
    of the distinct ``id_hash`` of every ``identifiers`` entry of a scratch table."""

    def t(self, name: str) -> str:
        raise NotImplementedError

    def create(self, name: str, sql: str) -> None:
        raise NotImplementedError

    def insert(self, name: str, sql: str) -> None:
        raise NotImplementedError

    def count(self, name: str) -> int:
        raise NotImplementedError

    def load_keys(self, name: str, column: str, files: list[str]) -> None:
        raise NotImplementedError

    def unnest_ids(self, source: str) -> str:
        raise NotImplementedError

    def export(self, name: str, table: str, where: str, folder: str) -> tuple[list[str], int]:
        raise NotImplementedError

    def close(self) -> None:
        pass


def _closure(s: Session, request: StateRequest) -> None:
    """Scratch tables ``a`` (identifiers read), ``p`` (persons of the graph read), ``e`` (persons
    whose scores are read) and ``h`` (the touchpoints read for attribution) -- see the module doc."""
    t = s.t
    s.create("a0", f"SELECT DISTINCT id_hash FROM {t('run_ids')}")
    for _ in range(MAX_ROUNDS):
        s.create("p", f"SELECT DISTINCT person_id FROM identity_map WHERE status = 'linked' AND person_id IS NOT NULL "
                      f"AND id_hash IN (SELECT id_hash FROM {t('a0')})")
        while True:
            s.create("m", f"SELECT id_hash FROM identity_map WHERE status = 'linked' "
                          f"AND person_id IN (SELECT person_id FROM {t('p')})")
            neighbours = " UNION DISTINCT ".join(
                f"SELECT o.person_id FROM identity_links l JOIN {t('m')} x ON l.{near} = x.id_hash "
                f"JOIN identity_map o ON o.id_hash = l.{far} WHERE o.status = 'linked' AND o.person_id IS NOT NULL "
                f"AND o.person_id NOT IN (SELECT person_id FROM {t('p')})"
                for near, far in (("id_hash", "linked_hash"), ("linked_hash", "id_hash")))
            s.create("np", f"SELECT DISTINCT person_id FROM ({neighbours}) q")
            if not s.count("np"):
                break
            s.insert("p", f"SELECT person_id FROM {t('np')}")
        s.create("a", f"SELECT id_hash FROM {t('a0')} UNION DISTINCT SELECT id_hash FROM {t('m')}")
        s.create("e", f"SELECT person_id FROM {t('p')}")
        if request.history_since is None:
            break
        while True:  # the experience persons: P plus the stored persons of the replayed events
            s.create("h", f"SELECT event_id, person_id, identifiers FROM touchpoints WHERE event_date >= "
                          f"{_date(request.history_since)} AND (person_id IN (SELECT person_id FROM {t('e')}) "
                          f"OR event_id IN (SELECT event_id FROM {t('run_events')}))")
            s.create("ne", f"SELECT DISTINCT person_id FROM {t('h')} WHERE person_id IS NOT NULL "
                           f"AND person_id NOT IN (SELECT person_id FROM {t('e')})")
            if not s.count("ne"):
                break
            s.insert("e", f"SELECT person_id FROM {t('ne')}")
        s.create("ni", f"SELECT id_hash FROM ({s.unnest_ids('h')}) q WHERE id_hash NOT IN (SELECT id_hash FROM {t('a0')})")
        if not s.count("ni"):
            break
        s.insert("a0", f"SELECT id_hash FROM {t('ni')}")
    else:
        raise RuntimeError(f"the affected state did not settle in {MAX_ROUNDS} rounds")


def _filters(s: Session, request: StateRequest) -> dict[str, str]:
    """{read name: WHERE condition}."""
    t = s.t
    affected = request.mode == "affected"
    since = _date(request.history_since) if request.history_since is not None else None
    out = {}
    if affected:
        out["identity_map"] = f"id_hash IN (SELECT id_hash FROM {t('a')})"
        out["identity_links"] = (f"id_hash IN (SELECT id_hash FROM {t('a')}) "
                                 f"OR linked_hash IN (SELECT id_hash FROM {t('a')})")
        ends = " UNION DISTINCT ".join(
            f"SELECT l.{far} AS id_hash FROM identity_links l JOIN {t('a')} x ON l.{near} = x.id_hash"
            for near, far in (("id_hash", "linked_hash"), ("linked_hash", "id_hash")))
        out["identity_excluded"] = (f"status = 'quarantined' AND id_hash NOT IN (SELECT id_hash FROM {t('a')}) "
                                    f"AND id_hash IN (SELECT id_hash FROM ({ends}) q)")
        out["person_merges"] = f"new_person_id IN (SELECT person_id FROM {t('p')})"
        if since is not None:
            matched = (f"(COALESCE(person_id IN (SELECT person_id FROM {t('e')}), FALSE) "
                       f"OR event_id IN (SELECT event_id FROM {t('run_events')}))")
            out["history"] = f"event_date >= {since} AND {matched}"
            if request.window is not None:
                out["history_surveys"] = (f"event_date >= {_date(request.window)} AND survey_kind IS NOT NULL "
                                          f"AND NOT {matched}")
        persons = f"person_id IN (SELECT person_id FROM {t('e')}) AND "
    else:
        out.update(identity_map="TRUE", identity_links="TRUE", person_merges="TRUE")
        if since is not None:
            out["history"] = f"event_date >= {since}"
        persons = ""
    if request.earliest is not None:
        out["history_daily"] = f"{persons}score_date >= {_date(request.earliest)}"
        out["history_current"] = f"{persons}score_date < {_date(request.earliest)}"
    return out


def read_state(session: Session, request: StateRequest, keys: dict[str, list[str]], folder: str) -> dict[str, tuple[list[str], int]]:
    """Export every read of ``request`` (see the module doc) to snapshot files under ``folder``;
    ``keys``: the run's key files (``ids``, ``events``). Returns {name: (files, rows)}."""
    if request.mode == "affected":
        session.load_keys("run_ids", "id_hash", keys.get("ids", []))
        session.load_keys("run_events", "event_id", keys.get("events", []))
        _closure(session, request)
    where = _filters(session, request)
    out = {}
    for name in request.names:
        if name not in where:
            continue
        out[name] = session.export(name, SHAPES[name], where[name], FileSystems.join(folder, name))
    return out


# ----------------------------------------------------------------------------------- pipeline
class WriteRunKeys(beam.DoFn):
    """(bucket, packed touchpoints) -> the bucket's distinct identifier hashes and event ids as two
    Parquet files under ``folder`` (named by bucket: a retry rewrites them); yields (kind, path)."""

    def __init__(self, folder: str):
        self._folder = folder

    def process(self, element):
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        key, blob = element
        table = unpack(blob)
        ids = pc.unique(pc.struct_field(pc.list_flatten(table.column("identifiers")), "id_hash"))
        for kind, column, values in (("ids", "id_hash", ids), ("events", "event_id", pc.unique(table.column("event_id")))):
            path = FileSystems.join(self._folder, kind, f"b{key:05d}-{len(values)}.parquet")
            with FileSystems.create(path) as fh:
                pq.write_table(pa.table({column: values}), fh)
            yield kind, path


class _Export(beam.DoFn):
    """The key files (all of them, once) -> (read name, snapshot file) of every read."""

    def __init__(self, warehouse_url: str, request: StateRequest, folder: str):
        self._url = warehouse_url
        self._request = request
        self._folder = folder

    def process(self, keys: list[tuple[str, str]]):
        from . import open_warehouse

        files: dict[str, list[str]] = {}
        for kind, path in keys:
            files.setdefault(kind, []).append(path)
        warehouse = open_warehouse(self._url)
        try:
            session = warehouse.session()
            try:
                exported = read_state(session, self._request, files, self._folder)
            finally:
                session.close()
        finally:
            warehouse.close()
        for name, (paths, rows) in exported.items():
            Metrics.counter(NAMESPACE, f"state.{name}.rows").inc(rows)
            log.debug("state %s: %d rows read", name, rows)
            for path in paths:
                yield name, path


class ReadStoredState(beam.PTransform):
    """Deduplicated touchpoint batches -> ``{read name: PCollection of Arrow tables}`` of the stored
    rows this run can affect (see the module doc), read once every run key is written."""

    def __init__(self, warehouse_url: str, request: StateRequest, staging_dir: str):
        super().__init__()
        self._url = warehouse_url
        self._request = request
        self._dir = staging_dir

    def expand(self, touchpoints):
        keys = touchpoints | "WriteRunKeys" >> beam.ParDo(WriteRunKeys(FileSystems.join(self._dir, "_keys")))
        exported = (
            keys
            | "AllKeys" >> beam.combiners.ToList()
            | "ReadAffected" >> beam.ParDo(_Export(self._url, self._request, FileSystems.join(self._dir, "_state")))
            | "Spread" >> beam.Reshuffle()
        )
        out = {}
        for name in self._request.names:
            out[name] = (
                exported
                | f"Files{camel(name)}" >> beam.FlatMap(lambda kv, name=name: [kv[1]] if kv[0] == name else [])
                | f"Read{camel(name)}" >> beam.ParDo(_ReadTables(SHAPES[name]))
            )
        return out


__all__ = ["StateRequest", "Session", "read_state", "ReadStoredState", "WriteRunKeys", "SHAPES"]
