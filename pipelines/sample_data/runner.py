"""Orchestration: run blocks (in this process or a pool), append their chunks to the shard files in
block order, then write the corrupt Avro files, the truth files and the manifest."""

from __future__ import annotations

import collections
import json
import multiprocessing
import os
import shutil
import threading
from pathlib import Path

from .blocks import SAMPLES_PER_CHANNEL, BlockResult, BlockTask, block_persons, run_block
from .config import GenerateConfig
from .malform import ALL_REASONS, CORRUPT_AVRO
from .writers import (
    CHANNELS, CORRUPT_BLOCK_RECORDS, CORRUPT_BLOCKS, CORRUPT_FILE, CORRUPT_INDEX, avro_header, channel_format,
    corrupt_avro_file, part_path, sync_marker, truth_prefix, truth_suffix,
)

MANIFEST_VERSION = 1


def _tasks(cfg: GenerateConfig):
    size = block_persons(cfg.days)
    for block, first in enumerate(range(0, cfg.persons, size)):
        yield BlockTask(
            seed=cfg.seed, persons=cfg.persons, days=cfg.days, start_ordinal=cfg.start_date.toordinal(),
            malformed_rate=float(cfg.malformed_rate), duplicate_rate=float(cfg.duplicate_rate),
            conflict_rate=float(cfg.conflict_rate), format=cfg.format, shards=cfg.shards, truth=cfg.truth,
            block=block, first=first, count=min(size, cfg.persons - first),
        )


def _context():
    """fork when this process has no other threads (fast, and scripts need no ``__main__`` guard);
    spawn otherwise (forking a threaded host such as a Beam or gRPC process can deadlock)."""
    if "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _results(cfg: GenerateConfig):
    """Block results in block order; with workers > 1 at most 2 x workers blocks are in flight."""
    size = block_persons(cfg.days)
    workers = min(cfg.effective_workers, -(-cfg.persons // size))
    tasks = _tasks(cfg)
    if workers <= 1:
        yield from map(run_block, tasks)
        return
    with _context().Pool(workers) as pool:
        window: collections.deque = collections.deque()
        for task in tasks:
            window.append(pool.apply_async(run_block, (task,)))
            if len(window) >= 2 * workers:
                yield window.popleft().get()
        while window:
            yield window.popleft().get()


def _clean(out: Path) -> None:
    """Remove what an earlier run wrote here (only files of this layout)."""
    for channel in CHANNELS:
        folder = out / channel
        if folder.is_dir():
            for path in folder.glob("part-*"):
                if path.is_file():
                    path.unlink(missing_ok=True)
    truth = out / "truth"
    for name in ("records.jsonl", "persons.jsonl"):
        if (truth / name).is_file():
            (truth / name).unlink(missing_ok=True)
    shutil.rmtree(truth / ".records", ignore_errors=True)
    if (out / "manifest.json").is_file():
        (out / "manifest.json").unlink(missing_ok=True)


def generate(cfg: GenerateConfig) -> dict:
    """Write the sample data set described by ``cfg``; return (and write) its manifest.

    Files of an earlier run in ``cfg.out_dir`` (part files, truth, manifest) are replaced. With
    ``workers > 1`` blocks run in a process pool: forked when this process has no other threads,
    spawned otherwise (then the calling script needs the usual ``if __name__ == "__main__":`` guard).
    """
    cfg.validate()
    out = Path(os.fspath(cfg.out_dir))
    out.mkdir(parents=True, exist_ok=True)
    _clean(out)
    shards = cfg.shards
    formats = {ch: channel_format(cfg.format, ch) for ch in CHANNELS}
    paths = {ch: [part_path(ch, s, shards, formats[ch]) for s in range(shards)] for ch in CHANNELS}
    for ch in CHANNELS:
        (out / ch).mkdir(exist_ok=True)
        for rel in paths[ch]:
            with open(out / rel, "wb") as fh:
                if formats[ch] == "avro":
                    fh.write(avro_header(ch, sync_marker(ch, cfg.seed)))
    truth_dir = out / "truth"
    tmp = truth_dir / ".records"
    if cfg.truth:
        tmp.mkdir(parents=True, exist_ok=True)
        persons_fh = open(truth_dir / "persons.jsonl", "w", encoding="utf-8")
    prefixes = {ch: [truth_prefix(ch, rel) for rel in paths[ch]] for ch in CHANNELS}
    units = {ch: [0] * shards for ch in CHANNELS}
    stats = {ch: {"events": 0, "good": 0, "duplicates": 0, "conflicts": 0, "malformed": collections.Counter()} for ch in CHANNELS}
    samples: dict[str, list] = {ch: [] for ch in CHANNELS if formats[ch] == "avro"}
    persons = 0
    population: collections.Counter = collections.Counter()
    try:
        for result in _results(cfg):
            persons += result.person_count
            population.update(result.population)
            if cfg.truth:
                persons_fh.write(result.persons)
            _append(out, tmp, result, paths, prefixes, units, stats, samples, cfg.truth)
    finally:
        if cfg.truth:
            persons_fh.close()

    corrupt = {}
    if cfg.malformed_rate > 0:
        for ch, recs in samples.items():
            if recs:
                corrupt[ch] = _write_corrupt(out, tmp, ch, cfg, recs, stats[ch])

    if cfg.truth:
        with open(truth_dir / "records.jsonl", "wb") as dst:
            for ch in CHANNELS:
                for s in range(shards):
                    part = tmp / f"{ch}-{s:05d}"
                    if part.exists():
                        with open(part, "rb") as src:
                            shutil.copyfileobj(src, dst, 1 << 20)
                if ch in corrupt:
                    with open(tmp / f"{ch}-corrupt", "rb") as src:
                        shutil.copyfileobj(src, dst)
        shutil.rmtree(tmp, ignore_errors=True)

    manifest = _manifest(cfg, formats, paths, units, stats, corrupt, persons, population)
    with open(out / "manifest.json", "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, indent=2)
        fh.write("\n")
    return manifest


def _append(out, tmp, result: BlockResult, paths, prefixes, units, stats, samples, truth: bool) -> None:
    for ch, chunk in result.channels.items():
        st = stats[ch]
        st["events"] += chunk.events
        st["good"] += chunk.good
        st["duplicates"] += chunk.duplicates
        st["conflicts"] += chunk.conflicts
        st["malformed"].update(chunk.malformed)
        if ch in samples and len(samples[ch]) < SAMPLES_PER_CHANNEL:
            samples[ch].extend(chunk.samples[: SAMPLES_PER_CHANNEL - len(samples[ch])])
        for s, data in enumerate(chunk.data):
            n = chunk.units[s]
            if not n:
                continue
            with open(out / paths[ch][s], "ab") as fh:
                fh.write(data)
            if truth:
                start = units[ch][s]
                prefix = prefixes[ch][s]
                text = "".join([f"{prefix}{i}, {suffix}" for i, suffix in enumerate(chunk.truth[s], start)])
                with open(tmp / f"{ch}-{s:05d}", "a", encoding="utf-8") as fh:
                    fh.write(text)
            units[ch][s] += n


def _write_corrupt(out: Path, tmp: Path, ch: str, cfg: GenerateConfig, recs: list, st: dict) -> dict:
    """Copies of good records in CORRUPT_BLOCKS small blocks; the second block's bytes are overwritten."""
    need = CORRUPT_BLOCKS * CORRUPT_BLOCK_RECORDS
    chosen = [recs[i % len(recs)] for i in range(need)]
    data, layout = corrupt_avro_file(ch, cfg.seed, [rec for rec, _, _ in chosen])
    rel = f"{ch}/{CORRUPT_FILE}"
    with open(out / rel, "wb") as fh:
        fh.write(data)
    prefix = truth_prefix(ch, rel)
    lines = []
    units = 0
    for b, (first, count) in enumerate(layout):
        if b == CORRUPT_INDEX:
            rec, pid, role = chosen[first]
            lines.append(f"{prefix}{b}, " + truth_suffix(None, pid, role, "malformed", CORRUPT_AVRO, count))
            st["malformed"][CORRUPT_AVRO] += 1
            units += 1
            continue
        for i in range(first, first + count):
            rec, pid, role = chosen[i]
            lines.append(f"{prefix}{i}, " + truth_suffix(rec["event_id"], pid, role, "duplicate", None))
            st["duplicates"] += 1
            units += 1
    if cfg.truth:
        with open(tmp / f"{ch}-corrupt", "w", encoding="utf-8") as fh:
            fh.write("".join(lines))
    return {"file": rel, "input_units": units, "blocks": len(layout), "corrupt_block": CORRUPT_INDEX,
            "records": sum(c for _, c in layout)}


def _manifest(cfg, formats, paths, units, stats, corrupt, persons, population) -> dict:
    echo = cfg.echo()
    echo.pop("out_dir")  # where it was written and how many processes wrote it do not change the data
    echo.pop("workers")
    channels = {}
    totals = {"files": 0, "input_units": 0, "events_generated": 0, "good": 0, "duplicates": 0, "conflicts": 0,
              "malformed": {}, "malformed_total": 0}
    for ch in CHANNELS:
        st = stats[ch]
        files = list(paths[ch])
        per_file = dict(zip(files, units[ch]))
        if ch in corrupt:
            files.append(corrupt[ch]["file"])
            per_file[corrupt[ch]["file"]] = corrupt[ch]["input_units"]
        malformed = {reason: st["malformed"][reason] for reason in ALL_REASONS if st["malformed"][reason]}
        n_mal = sum(malformed.values())
        entry = {
            "format": formats[ch],
            "files": files,
            "input_units_per_file": per_file,
            "input_units": st["good"] + st["duplicates"] + st["conflicts"] + n_mal,
            "events_generated": st["events"],
            "good": st["good"],
            "duplicates": st["duplicates"],
            "conflicts": st["conflicts"],
            "malformed": malformed,
            "malformed_total": n_mal,
        }
        if ch in corrupt:
            entry["corrupt_file"] = corrupt[ch]
        assert entry["input_units"] == sum(per_file.values())
        channels[ch] = entry
        totals["files"] += len(files)
        for key in ("input_units", "events_generated", "good", "duplicates", "conflicts", "malformed_total"):
            totals[key] += entry[key]
        for reason, n in malformed.items():
            totals["malformed"][reason] = totals["malformed"].get(reason, 0) + n
    totals["malformed"] = {r: totals["malformed"][r] for r in ALL_REASONS if r in totals["malformed"]}
    manifest = {
        "generator": "touchline.pipelines.sample_data",
        "manifest_version": MANIFEST_VERSION,
        "config": echo,
        "persons": persons,
        "population": {key: population.get(key, 0) for key in ("customer", "employee", "partner", "households")},
        "channels": channels,
        "totals": totals,
    }
    if cfg.truth:
        manifest["truth"] = {"records": "truth/records.jsonl", "persons": "truth/persons.jsonl"}
    return manifest
