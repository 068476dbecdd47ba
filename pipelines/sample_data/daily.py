"""Split generated sample data into one input folder per day: the daily feed a scheduled run reads.

    split_by_day("data/sample", "data/daily")  ->  data/daily/2026-10-01/app/part-00000.avro, ...

Every input unit lands in exactly one day: a record by the UTC date of its timestamp field (the
channel's ``timestamp_field``), a record whose date cannot be read (malformed on purpose) by a hash
of its bytes, so every day gets its share of dirt. JSON Lines keep their bytes as written; Avro
records are re-encoded with the file's writer schema. Every day gets every file, empty when no record
fell on it (a quiet day of a channel is still a day of that channel's feed). A corrupt Avro file (``part-corrupt-*``) is
copied whole to the first day. ``touchline generate --split_by_day DIR`` does this after generating.
"""

from __future__ import annotations

import datetime as dt
import glob
import os
import shutil
import zlib

import fastavro
import orjson

from touchline.transforms import channels

from .writers import AVRO_CODEC


def _day_of(value, days: list[str]) -> str:
    if isinstance(value, str):
        try:
            stamp = dt.datetime.fromisoformat(value)
            if stamp.tzinfo is not None:
                day = stamp.astimezone(dt.timezone.utc).date().isoformat()
                if day in days:
                    return day
        except ValueError:
            pass
    return days[zlib.crc32(repr(value).encode()) % len(days)]


def split_by_day(source: str, out: str, days: list[str] | None = None) -> dict[str, int]:
    """Split ``source`` (the generator's layout) into ``out/<YYYY-MM-DD>/<channel>/``; returns
    input units per day. ``days``: the days to split into (default: from the manifest)."""
    if days is None:
        import json

        with open(os.path.join(source, "manifest.json"), encoding="utf-8") as fh:
            config = json.load(fh)["config"]
        start = dt.date.fromisoformat(config["start_date"])
        days = [(start + dt.timedelta(days=i)).isoformat() for i in range(config["days"])]
    counts = dict.fromkeys(days, 0)
    for folder in sorted(glob.glob(os.path.join(source, "*"))):
        name = os.path.basename(folder)
        if not os.path.isdir(folder) or name not in channels.names():
            continue
        field = channels.get(name).timestamp_field
        for path in sorted(glob.glob(os.path.join(folder, "*"))):
            base = os.path.basename(path)
            if base.startswith("part-corrupt"):
                target = os.path.join(out, days[0], name)
                os.makedirs(target, exist_ok=True)
                shutil.copy(path, target)
                continue
            if base.endswith(".avro"):
                _split_avro(path, out, name, field, days, counts)
            elif base.endswith(".jsonl"):
                _split_jsonl(path, out, name, field, days, counts)
    return counts


def _split_jsonl(path: str, out: str, channel: str, field: str, days: list[str], counts: dict[str, int]) -> None:
    per_day: dict[str, list[bytes]] = {day: [] for day in days}  # a day without records gets an empty file
    with open(path, "rb") as fh:
        for line in fh:
            try:
                record = orjson.loads(line)
                value = record.get(field) if isinstance(record, dict) else line
            except orjson.JSONDecodeError:
                value = line
            per_day.setdefault(_day_of(value, days), []).append(line if line.endswith(b"\n") else line + b"\n")
    for day, lines in per_day.items():
        target = os.path.join(out, day, channel)
        os.makedirs(target, exist_ok=True)
        with open(os.path.join(target, os.path.basename(path)), "wb") as fh:
            fh.writelines(lines)
        counts[day] += len(lines)


def _split_avro(path: str, out: str, channel: str, field: str, days: list[str], counts: dict[str, int]) -> None:
    per_day: dict[str, list[dict]] = {day: [] for day in days}  # a day without records gets an empty file
    with open(path, "rb") as fh:
        reader = fastavro.reader(fh)
        schema = reader.writer_schema
        for record in reader:
            per_day.setdefault(_day_of(record.get(field), days), []).append(record)
    for day, records in per_day.items():
        target = os.path.join(out, day, channel)
        os.makedirs(target, exist_ok=True)
        with open(os.path.join(target, os.path.basename(path)), "wb") as fh:
            fastavro.writer(fh, schema, records, codec=AVRO_CODEC)
        counts[day] += len(records)


__all__ = ["split_by_day"]
