"""One block of persons -> serialized shard chunks, truth lines and counts.

A block is the unit of determinism and of parallelism: its persons and behaviour come from an RNG
seeded with (seed, block index), and its output depends on nothing else, so blocks can run in any
process in any order and the assembled files are the same.
"""

from __future__ import annotations

import collections
import datetime as dt
import gc
import json
import random
from dataclasses import dataclass, field
from operator import itemgetter
from typing import NamedTuple

from .behaviour import BlockSim
from .clock import UTC_MS, epoch_ms, iso
from .malform import malform_avro, malform_jsonl
from .people import make_persons
from .writers import CHANNELS, JsonlStyle, avro_blocks, channel_format, sync_marker, truth_suffix

_first = itemgetter(0)
SAMPLES_PER_CHANNEL = 16  # records copied into the corrupt Avro file
EXTRA_FIELDS = (("experiment", ("A", "B", "control")), ("sdk_build", ("1234", "1240", "1302")),
                ("ingest_region", ("eu-west1", "us-east1")), ("tracker_version", ("3.2.0", "3.3.1")))


def block_persons(days: int) -> int:
    """Persons per block: ~7.5k person-days, so a block holds roughly 15k events."""
    return max(8, min(250, 7500 // days))


class BlockTask(NamedTuple):
    seed: int
    persons: int
    days: int
    start_ordinal: int
    malformed_rate: float
    duplicate_rate: float
    conflict_rate: float
    format: str
    shards: int
    truth: bool
    block: int
    first: int
    count: int


@dataclass
class ChannelChunk:
    data: list[bytes]  # per shard: JSONL lines or Avro blocks (no header)
    units: list[int]  # per shard: input units written
    truth: list[list[str]]  # per shard: truth suffixes in file order
    events: int = 0
    good: int = 0
    duplicates: int = 0
    conflicts: int = 0
    malformed: dict[str, int] = field(default_factory=dict)
    samples: list[tuple[dict, str, str]] = field(default_factory=list)  # Avro only: (record, person, role)


@dataclass
class BlockResult:
    block: int
    channels: dict[str, ChannelChunk]
    persons: str  # truth/persons.jsonl lines
    person_count: int
    population: dict[str, int]  # persons per role, persons in a household


def _malformed_probability(m: float, d: float, c: float) -> float:
    """Per generated event, so that malformed / all input units ~= m (dups and conflicts add units)."""
    return m * (1 + d + c) / (1 + m * (d + c)) if m else 0.0


def run_block(task: BlockTask) -> BlockResult:
    # A block allocates ~10^5 short-lived dicts and tuples with no reference cycles; the cyclic GC
    # would scan them over and over (~15% of the time), so it is paused while the block runs.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _run_block(task)
    finally:
        if was_enabled:
            gc.enable()


def _run_block(task: BlockTask) -> BlockResult:
    start = dt.date.fromordinal(task.start_ordinal)
    t0 = epoch_ms(start)
    rng = random.Random(f"touchline-sample:{task.seed}:block:{task.block}")
    persons = make_persons(task.first, task.count, task.seed, rng, t0 // 1000, task.days)
    sim = BlockSim(rng, task.seed, task.persons, t0, task.days, start.weekday())
    for p in persons:
        sim.person(p)
    persons_text = ""
    if task.truth:
        persons_text = "".join(json.dumps(p.truth()) + "\n" for p in persons)
    post = random.Random(f"touchline-sample:{task.seed}:post:{task.block}")
    chunks = {}
    for channel in CHANNELS:
        events = getattr(sim, channel)
        chunks[channel] = _assemble(channel, events, task, post)
    population = collections.Counter(role for p in persons for role in p.roles)
    population["households"] = sum(1 for p in persons if p.household is not None)
    return BlockResult(task.block, chunks, persons_text, len(persons), dict(population))


def _assemble(channel: str, events: list, task: BlockTask, rng: random.Random) -> ChannelChunk:
    fmt = channel_format(task.format, channel)
    shards = task.shards
    avro = fmt == "avro"
    want_truth = task.truth
    p_mal = _malformed_probability(task.malformed_rate, task.duplicate_rate, task.conflict_rate)
    p_dup = task.duplicate_rate
    p_dup_or_conflict = task.duplicate_rate + task.conflict_rate
    style = None if avro else JsonlStyle(channel)
    shape = style.shape if style else None
    encode = style.encode if style else None
    r = rng.random
    out: list[list] = [[] for _ in range(shards)]
    chunk = ChannelChunk(data=[], units=[], truth=[], events=len(events))
    malformed = chunk.malformed
    good = dups = conflicts = 0
    samples = chunk.samples
    no_truth = ""

    # Each item gets a random position key: its shard is the integer part, its place in the shard the
    # fraction (sorting by the key is a deterministic shuffle: arrival order is not event order).
    for rec, pid, role, t, offset in events:
        key = r() * shards
        shard = int(key)
        if r() < p_mal:
            if avro:
                payload, reason, eid = malform_avro(rec, channel, t, offset, rng)
            else:
                line, reason, eid = malform_jsonl(shape(rec), channel, t, offset, rng, encode)
                payload = line + b"\n"
            malformed[reason] = malformed.get(reason, 0) + 1
            out[shard].append((key, payload, truth_suffix(eid, pid, role, "malformed", reason) if want_truth else no_truth))
            continue
        eid = rec["event_id"]
        if avro:
            payload = rec
            if len(samples) < SAMPLES_PER_CHANNEL:
                samples.append((rec, pid, role))
        else:
            shaped = shape(rec)
            if r() < 0.01:  # an unknown field from a newer producer: valid, kept as an attribute
                if shaped is rec:
                    shaped = dict(rec)
                name, values = EXTRA_FIELDS[int(r() * len(EXTRA_FIELDS))]
                shaped[name] = values[int(r() * len(values))]
            payload = (encode(shaped) + "\n").encode()
        good += 1
        out[shard].append((key, payload, f'"event_id": "{eid}", "person": "{pid}", "role": "{role}", "status": "good", '
                                         f'"reason": null, "records": 1}}\n' if want_truth else no_truth))
        u = r()
        if u < p_dup_or_conflict:
            # another shard (or, with one shard, another position)
            other = (shard + 1 + int(r() * (shards - 1))) % shards if shards > 1 else shard
            key2 = other + r()
            if u < p_dup:  # at-least-once redelivery: the very same bytes / record
                dups += 1
                out[other].append((key2, payload, truth_suffix(eid, pid, role, "duplicate", None) if want_truth else no_truth))
            else:  # same event_id, different content
                conflicts += 1
                changed = _conflicting(rec, t, offset, rng)
                payload2 = changed if avro else (encode(shape(changed)) + "\n").encode()
                out[other].append((key2, payload2, truth_suffix(eid, pid, role, "conflict", None) if want_truth else no_truth))

    chunk.good, chunk.duplicates, chunk.conflicts = good, dups, conflicts
    sync = sync_marker(channel, task.seed) if avro else b""
    for items in out:
        items.sort(key=_first)
        payloads = [p for _, p, _ in items]
        chunk.units.append(len(items))
        chunk.truth.append([s for _, _, s in items] if want_truth else [])
        chunk.data.append(avro_blocks(channel, sync, payloads) if avro else b"".join(payloads))
    return chunk


def _conflicting(rec: dict, t: int, offset: int, rng: random.Random) -> dict:
    """A re-emission with the same event_id but different content (a retried SDK call that re-read
    the clock, or a producer that re-enriched the record)."""
    out = dict(rec)
    if rng.random() < 0.5:
        out["occurred_at"] = iso(t + (1 + rng.randrange(300)) * 1000, offset, UTC_MS)
    else:
        props = dict(rec.get("properties") or {})
        props["retry"] = str(1 + rng.randrange(3))
        out["properties"] = props
    return out
