"""``touchline erase``: delete a person's identifiers, touchpoints and derived rows; keep them out.

    touchline erase --identifier email:alice@example.com [--identifier customer_id:C123 ...]
    touchline erase --person_id p_0123456789abcdef0123 [--dry_run]

An identifier is normalized and keyed-hashed exactly as the pipeline does (same
``--hash_key_source``), so clear text never reaches the warehouse. The person it belongs to is
looked up in ``identity_map``, widened to every id the person had (``person_merges`` in both
directions), and then:

1. every identifier of those persons, plus the named ones, is collected, and the event ids of their
   touchpoints;
2. ``Warehouse.erase`` deletes, in one transaction, every row of every table whose schema declares
   ``erase_by`` (touchpoints, identity tables, dead letters carrying their ``<email:HASH>`` tokens or
   event ids, and tables added later such as journeys and scores) and adds the identifier hashes to
   ``erasure_requests``;
3. later runs honour that list (``transforms.identity.erasure``): a replay of old input files does
   not bring the person back.

Aggregates that do not identify anyone (``pipeline_runs`` counters) are kept.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import re

from touchline.transforms.identifiers import DEFAULT_KEY_SOURCE, KINDS, Hasher, KeyError_, resolve_key
from touchline.transforms.warehouse import open_warehouse

from .options import DEFAULT_WAREHOUSE, ConfigError

PERSON_ID = re.compile(r"p_[0-9a-f]{20}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--identifier", action="append", default=[], metavar="KIND:VALUE",
                        help=f"An identifier of the person, e.g. email:alice@example.com (repeatable). Kinds: {', '.join(KINDS)}.")
    parser.add_argument("--person_id", action="append", default=[], metavar="p_...",
                        help="A person id from touchpoints or identity_map (repeatable).")
    parser.add_argument("--warehouse", default=DEFAULT_WAREHOUSE, help="DuckDB file or bigquery://PROJECT.DATASET")
    parser.add_argument("--hash_key_source", default=DEFAULT_KEY_SOURCE,
                        help="The key the pipeline hashes identifiers with (env:NAME, file:PATH, secret:..., demo).")
    parser.add_argument("--dry_run", action="store_true", help="show what would be erased, change nothing")


def _identifier(text: str, hasher: Hasher) -> tuple[str, str]:
    kind, sep, value = text.partition(":")
    if not sep or kind not in KINDS:
        raise ConfigError(f"--identifier {text!r} is not KIND:VALUE with a known kind",
                          f"use e.g. --identifier email:alice@example.com; kinds: {', '.join(KINDS)}")
    ident = hasher.identifier(kind, value)
    if ident is None:
        raise ConfigError(f"--identifier {text!r} has an empty value", "give the value after the colon")
    return kind, ident["id_hash"]


def _in(values) -> str:
    """A SQL IN list of hex hashes / person ids (validated: no quotes can occur)."""
    return ", ".join("'" + v.replace("'", "''") + "'" for v in sorted(values)) or "NULL"


def resolve(warehouse, named: dict[str, str], person_ids: set[str]) -> tuple[set[str], dict[str, tuple[str | None, str | None]], list[str]]:
    """(persons incl. merged ids, {id_hash: (kind, person)}, event ids) of the request."""
    persons = set(person_ids)
    if named:
        persons |= {p for (p,) in warehouse.query(
            f"SELECT DISTINCT person_id FROM identity_map WHERE id_hash IN ({_in(named)}) AND person_id IS NOT NULL")}
    frontier = set(persons)
    while frontier:  # every id the persons ever had, through merges in either direction
        rows = warehouse.query(
            f"SELECT old_person_id, new_person_id FROM person_merges "
            f"WHERE old_person_id IN ({_in(frontier)}) OR new_person_id IN ({_in(frontier)})")
        found = {p for row in rows for p in row} - persons
        persons |= found
        frontier = found
    hashes: dict[str, tuple[str | None, str | None]] = {h: (kind, None) for h, kind in named.items()}
    if persons:
        for id_hash, kind, person in warehouse.query(
                f"SELECT id_hash, kind, person_id FROM identity_map WHERE person_id IN ({_in(persons)})"):
            hashes[id_hash] = (kind, person)
    for id_hash, kind, person in warehouse.query(
            f"SELECT id_hash, kind, person_id FROM identity_map WHERE id_hash IN ({_in(named)})") if named else []:
        hashes[id_hash] = (kind, person)
    events = [e for (e,) in warehouse.query(
        f"SELECT event_id FROM touchpoints WHERE event_date >= DATE '1970-01-01' AND person_id IN ({_in(persons)})")] if persons else []
    return persons, hashes, events


def run(args: argparse.Namespace) -> str:
    if not args.identifier and not args.person_id:
        raise ConfigError("nothing to erase", "pass --identifier KIND:VALUE and/or --person_id p_... (repeatable)")
    for person in args.person_id:
        if not PERSON_ID.fullmatch(person):
            raise ConfigError(f"--person_id {person!r} is not a person id", "person ids look like p_ followed by 20 hex digits")
    for text in args.identifier:
        if text.partition(":")[0] not in KINDS or ":" not in text:
            raise ConfigError(f"--identifier {text!r} is not KIND:VALUE with a known kind",
                              f"use e.g. --identifier email:alice@example.com; kinds: {', '.join(KINDS)}")
    try:
        hasher = Hasher(resolve_key(args.hash_key_source))
    except KeyError_ as exc:
        raise ConfigError(str(exc)) from None
    named = dict(_identifier(text, hasher)[::-1] for text in args.identifier)  # id_hash -> kind
    warehouse = open_warehouse(args.warehouse)
    try:
        warehouse.check()
        warehouse.init()
        persons, hashes, events = resolve(warehouse, named, set(args.person_id))
        if args.person_id and not (set(args.person_id) & {p for _, p in hashes.values()}) and not events:
            unknown = ", ".join(sorted(set(args.person_id)))
            if not named:
                raise ConfigError(f"no person {unknown} in {warehouse.url}",
                                  "check the id (identity_map.person_id), or erase by --identifier")
        summary = (f"{len(persons)} person id(s), {len(hashes)} identifier(s), {len(events)} touchpoint(s)")
        if args.dry_run:
            return f"dry run: would erase {summary} from {warehouse.url}"
        now = dt.datetime.now(dt.timezone.utc)
        request_id = "erase-" + now.strftime("%Y%m%dT%H%M%SZ") + "-" + hashlib.sha256(
            "\n".join(sorted(hashes)).encode()).hexdigest()[:8]
        requested_at = int(now.timestamp() * 1_000_000)
        requests = [{"id_hash": h, "kind": kind, "person_id": person, "request_id": request_id, "requested_at": requested_at}
                    for h, (kind, person) in sorted(hashes.items())]
        deleted = warehouse.erase(persons, hashes, events, requests)
    finally:
        warehouse.close()
    lines = [f"erased {summary} from {warehouse.url} (request {request_id})"]
    lines += [f"  {table}: {count} row(s) {'added' if table == 'erasure_requests' else 'deleted'}"
              for table, count in sorted(deleted.items())]
    if not persons:
        lines.append("  no person had these identifiers; they are on the erasure list, so they never get in")
    return "\n".join(lines)
