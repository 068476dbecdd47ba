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
   When the identity lookback reaches further back than the experience stage reads
   (``moved_before``, the default: 30 days against 15), only the touchpoints from that day on are
   exported now (plus the replayed ones): the older ones matter only if they move to another
   person, and one can only if one of its identifiers moves (its person or status changes this
   run). Those are known once stitched, so :class:`ReadMovedHistory` reads them then: the
   touchpoints of ``E`` before ``moved_before`` that hold an identifier that moved
   (``history_moved``; ``E`` is kept from this read as a file). In steady state that is the
   persons merged, split or logged in that day, not 15 more days of everyone touched.
   The export is set apart by the run's event ids (``Session.export_split``): ``unreplayed``,
   the touchpoints whose event the run does not have (nearly all), and ``history``, the replays;
   identity joins only the second with the run's events (the run's events it sees are a subset
   of the key files', so an event outside them is never the run's).
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
    "unreplayed": "touchpoints",
    "history_moved": "touchpoints",
    "history_surveys": "touchpoints",
    "history_daily": "person_scores_daily",
    "history_current": "person_scores_current",
}
#: the stored touchpoints of ``history`` whose events this run does not have (affected mode): set
#: apart by the read, so identity does not join them with the run's event ids
UNREPLAYED = "unreplayed"
#: a safety bound on the closure rounds (each round adds what the previous one found)
MAX_ROUNDS = 50
NAMESPACE = "touchline"
#: the experience persons ``E`` of a read, kept for :class:`ReadMovedHistory` (not a table read)
PERSONS = "_persons"
#: the reads of the first pass (``history_moved`` is read after stitching, by :class:`ReadMovedHistory`)
FIRST_READS = tuple(name for name in SHAPES if name != "history_moved")


@dataclass(frozen=True)
class StateRequest:
    """What one run reads (days since the epoch). ``names``: the reads the graph has inputs for
    (tables with rows at launch); ``history_since`` None: no stored touchpoints are read;
    ``window``: the first day of the experience stage's read window (None: no experience stage);
    ``moved_before``: stored touchpoints of the lookback before this day are read after stitching,
    and only those that can move (``history_moved``; affected mode only; None: all at once)."""

    names: tuple[str, ...]
    mode: str = "affected"
    history_since: int | None = None
    window: int | None = None
    earliest: int | None = None
    moved_before: int | None = None

    def __post_init__(self):
        if self.mode not in ("affected", "full"):
            raise ValueError(f"state mode must be affected or full, got {self.mode!r}")
        if self.moved_before is not None and (self.mode != "affected" or self.history_since is None
                                              or self.moved_before <= self.history_since):
            raise ValueError("moved_before needs the affected mode and a day after history_since")


def _date(day: int) -> str:
    import datetime as dt

    return f"DATE '{(dt.date(1970, 1, 1) + dt.timedelta(days=day)).isoformat()}'"


class Session:
    """SQL a warehouse runs for :func:`read_state` (implemented per warehouse).

    ``t(name)`` is how SQL names a scratch table; ``create`` makes (or replaces) one from a query;
    ``load_keys`` makes one of a single string column from key files; ``export`` writes a query's
    rows to snapshot files of a table's shape and returns them; ``unnest_ids(source)`` is a query
    of the distinct ``id_hash`` of every ``identifiers`` entry of a scratch table;
    ``events_holding(where, ids)`` one of the ``event_id`` of the touchpoints matching ``where``
    that hold an identifier of scratch table ``ids``; ``keep`` writes a scratch table's column
    to Parquet files and returns them."""

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

    def events_holding(self, where: str, ids: str) -> str:
        raise NotImplementedError

    def export(self, name: str, table: str, where: str, folder: str) -> tuple[list[str], int]:
        raise NotImplementedError

    def keep(self, name: str, column: str, folder: str) -> tuple[list[str], int]:
        raise NotImplementedError

    def export_split(self, names: tuple[str, str], table: str, where: str, condition: str,
                     folders: tuple[str, str]) -> tuple[tuple[list[str], int], tuple[list[str], int]]:
        """The rows of one read set apart by ``condition``: (the rows where it is false, those where
        it is true), as :meth:`export` gives them. Here: two exports (a warehouse that bills per
        query scan overrides it to scan once)."""
        where_not, where_is = f"({where}) AND NOT ({condition})", f"({where}) AND ({condition})"
        return (self.export(names[0], table, where_not, folders[0]), self.export(names[1], table, where_is, folders[1]))

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
            persons = f"COALESCE(person_id IN (SELECT person_id FROM {t('e')}), FALSE)"
            replayed = _replayed(s)
            matched = f"({persons} OR {replayed})"
            if request.moved_before is None:
                out["history"] = f"event_date >= {since} AND {matched}"
            else:  # the older ones that can move: ReadMovedHistory
                out["history"] = (f"event_date >= {since} AND ((event_date >= {_date(request.moved_before)} "
                                  f"AND {persons}) OR {replayed})")
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


def _replayed(s: Session) -> str:
    """SQL: the touchpoint's event is one of this run's (its key files)."""
    return f"COALESCE(event_id IN (SELECT event_id FROM {s.t('run_events')}), FALSE)"


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
        if name not in where or name == UNREPLAYED:
            continue
        if name == "history" and UNREPLAYED in request.names:  # one read, set apart by the run's event ids
            out[UNREPLAYED], out[name] = session.export_split(
                (UNREPLAYED, name), SHAPES[name], where[name], _replayed(session),
                (FileSystems.join(folder, UNREPLAYED), FileSystems.join(folder, name)))
            continue
        out[name] = session.export(name, SHAPES[name], where[name], FileSystems.join(folder, name))
    if request.moved_before is not None and "history" in request.names:
        out[PERSONS] = session.keep("e", "person_id", FileSystems.join(folder, PERSONS))
    return out


def read_moved(session: Session, request: StateRequest, files: dict[str, list[str]], folder: str) -> tuple[list[str], int]:
    """Export ``history_moved`` (see the module doc): stored touchpoints from ``history_since`` to
    ``moved_before`` of the persons in file(s) ``files["persons"]`` that hold an identifier of
    ``files["moved"]`` and are not this run's events (``files["events"]``: those were read with
    ``history``). Returns (files, rows)."""
    t = session.t
    session.load_keys("moved", "id_hash", files.get("moved", []))
    session.load_keys("e", "person_id", files.get("persons", []))
    session.load_keys("run_events", "event_id", files.get("events", []))
    span = f"event_date >= {_date(request.history_since)} AND event_date < {_date(request.moved_before)}"
    where = (f"{span} AND person_id IN (SELECT person_id FROM {t('e')}) "
             f"AND event_id NOT IN (SELECT event_id FROM {t('run_events')}) "
             f"AND event_id IN ({session.events_holding(span, 'moved')})")
    return session.export("history_moved", SHAPES["history_moved"], where, FileSystems.join(folder, "history_moved"))


# ----------------------------------------------------------------------------------- pipeline
def write_keys(path: str, column: str, values: pa.Array) -> str:
    """A key file (``Session.load_keys`` reads it): one string column as Parquet; returns ``path``."""
    import pyarrow.parquet as pq

    with FileSystems.create(path) as fh:
        pq.write_table(pa.table({column: values}), fh)
    return path


class WriteRunKeys(beam.DoFn):
    """(bucket, packed touchpoints) -> the bucket's distinct identifier hashes and event ids as two
    Parquet files under ``folder`` (named by bucket: a retry rewrites them); yields (kind, path)."""

    def __init__(self, folder: str):
        self._folder = folder

    def process(self, element):
        import pyarrow.compute as pc

        key, blob = element
        table = unpack(blob)
        ids = pc.unique(pc.struct_field(pc.list_flatten(table.column("identifiers")), "id_hash"))
        for kind, column, values in (("ids", "id_hash", ids), ("events", "event_id", pc.unique(table.column("event_id")))):
            yield kind, write_keys(FileSystems.join(self._folder, kind, f"b{key:05d}-{len(values)}.parquet"), column, values)


class _Export(beam.DoFn):
    """The key files (all of them, once) -> (read name, snapshot file) of every read."""

    def __init__(self, warehouse_url: str, request: StateRequest, folder: str):
        self._url = warehouse_url
        self._request = request
        self._folder = folder

    def process(self, keys: list[tuple[str, str]]):
        files: dict[str, list[str]] = {}
        for kind, path in keys:
            files.setdefault(kind, []).append(path)
        exported = _session_of(self._url, lambda session: read_state(session, self._request, files, self._folder))
        for name, (paths, rows) in exported.items():
            if name in SHAPES:
                Metrics.counter(NAMESPACE, f"state.{name}.rows").inc(rows)
                log.debug("state %s: %d rows read", name, rows)
            for path in paths:
                yield name, path


def _session_of(url: str, work):
    """``work(session)`` on a session of the warehouse at ``url``, closed after."""
    from . import open_warehouse

    warehouse = open_warehouse(url)
    try:
        session = warehouse.session()
        try:
            return work(session)
        finally:
            session.close()
    finally:
        warehouse.close()


class _ExportMoved(beam.DoFn):
    """Every moved identifier hash (one list) -> (``history_moved``, snapshot file) of
    :func:`read_moved`; side inputs: the first read's exports (for ``E``) and the run's key files."""

    def __init__(self, warehouse_url: str, request: StateRequest, folder: str):
        self._url = warehouse_url
        self._request = request
        self._folder = folder

    def process(self, moved: list[str], exported: list[tuple[str, str]], keys: list[tuple[str, str]]):
        persons = [path for name, path in exported if name == PERSONS]
        if not moved or not persons:
            Metrics.counter(NAMESPACE, "state.history_moved.rows").inc(0)
            return
        path = write_keys(FileSystems.join(self._folder, "_keys", "moved", f"moved-{len(moved)}.parquet"), "id_hash",
                          pa.array(moved, pa.string()))
        files = {"moved": [path], "persons": persons, "events": [p for kind, p in keys if kind == "events"]}
        paths, rows = _session_of(self._url, lambda session: read_moved(
            session, self._request, files, FileSystems.join(self._folder, "_state")))
        Metrics.counter(NAMESPACE, "state.history_moved.rows").inc(rows)
        log.debug("state history_moved: %d rows read (%d identifiers moved)", rows, len(moved))
        yield from paths


class ReadMovedHistory(beam.PTransform):
    """One sorted list of the hashes of identifiers that moved this run (identity's ``Stitch``) -> Arrow
    tables of ``history_moved``: the stored touchpoints before ``moved_before`` that can move
    (see the module doc). Built by :meth:`ReadStoredState.moved_history`."""

    def __init__(self, warehouse_url: str, request: StateRequest, staging_dir: str, exported, keys):
        super().__init__()
        self._url = warehouse_url
        self._request = request
        self._dir = staging_dir
        self._exported = exported
        self._keys = keys

    def expand(self, moved):
        return (
            moved
            | "ReadMoved" >> beam.ParDo(_ExportMoved(self._url, self._request, self._dir),
                                        beam.pvalue.AsList(self._exported), beam.pvalue.AsList(self._keys))
            | "Spread" >> beam.Reshuffle()
            | "ReadHistoryMoved" >> beam.ParDo(_ReadTables(SHAPES["history_moved"]))
        )


class ReadStoredState(beam.PTransform):
    """Deduplicated touchpoint batches -> ``{read name: PCollection of Arrow tables}`` of the stored
    rows this run can affect (see the module doc), read once every run key is written."""

    def __init__(self, warehouse_url: str, request: StateRequest, staging_dir: str):
        super().__init__()
        self._url = warehouse_url
        self._request = request
        self._dir = staging_dir
        self._exported = self._keys = None

    def moved_history(self) -> ReadMovedHistory | None:
        """The step that reads ``history_moved`` once identity knows what moved (None when this
        request reads the whole lookback at once); only after this transform was applied."""
        if self._request.moved_before is None or "history" not in self._request.names:
            return None
        if self._exported is None:
            raise RuntimeError("apply ReadStoredState before asking for its moved-history step")
        return ReadMovedHistory(self._url, self._request, self._dir, self._exported, self._keys)

    def expand(self, touchpoints):
        keys = touchpoints | "WriteRunKeys" >> beam.ParDo(WriteRunKeys(FileSystems.join(self._dir, "_keys")))
        self._keys = keys
        self._exported = (
            keys
            | "AllKeys" >> beam.combiners.ToList()
            | "ReadAffected" >> beam.ParDo(_Export(self._url, self._request, FileSystems.join(self._dir, "_state")))
        )
        exported = self._exported | "Spread" >> beam.Reshuffle()
        out = {}
        for name in self._request.names:
            out[name] = (
                exported
                | f"Files{camel(name)}" >> beam.FlatMap(lambda kv, name=name: [kv[1]] if kv[0] == name else [])
                | f"Read{camel(name)}" >> beam.ParDo(_ReadTables(SHAPES[name]))
            )
        return out


__all__ = ["StateRequest", "Session", "read_state", "read_moved", "ReadStoredState", "ReadMovedHistory", "WriteRunKeys",
           "SHAPES"]
