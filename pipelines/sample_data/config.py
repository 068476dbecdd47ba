"""Configuration of the sample-data generator: the dataclass, its validation and the CLI flags."""

from __future__ import annotations

import argparse
import datetime as dt
import os
from dataclasses import asdict, dataclass

FORMATS = ("mixed", "avro", "jsonl")
MAX_PERSONS = 999_000  # unique ids are bijections of the person index into E+6 digits
MAX_DAYS = 3660
MAX_SHARDS = 256
MAX_RATE = 0.5

DEFAULTS = {
    "out_dir": "data/sample",
    "persons": 2000,
    "days": 30,
    "seed": 7,
    "start_date": dt.date(2026, 10, 1),
    "malformed_rate": 0.02,
    "duplicate_rate": 0.02,
    "conflict_rate": 0.001,
    "format": "mixed",
    "shards": 4,
    "truth": True,
    "workers": 1,
}


@dataclass(frozen=True)
class GenerateConfig:
    """What to generate. ``workers`` changes speed only, never the output bytes."""

    out_dir: str = DEFAULTS["out_dir"]
    persons: int = DEFAULTS["persons"]
    days: int = DEFAULTS["days"]
    seed: int = DEFAULTS["seed"]
    start_date: dt.date = DEFAULTS["start_date"]
    malformed_rate: float = DEFAULTS["malformed_rate"]
    duplicate_rate: float = DEFAULTS["duplicate_rate"]
    conflict_rate: float = DEFAULTS["conflict_rate"]
    format: str = DEFAULTS["format"]
    shards: int = DEFAULTS["shards"]
    truth: bool = DEFAULTS["truth"]
    workers: int = DEFAULTS["workers"]

    def validate(self) -> "GenerateConfig":
        """Raise ValueError naming the flag, the bad value and what is allowed; return self."""
        _positive_int("--persons", self.persons, MAX_PERSONS)
        _positive_int("--days", self.days, MAX_DAYS)
        _positive_int("--shards", self.shards, MAX_SHARDS)
        if not _is_int(self.seed) or self.seed < 0:
            raise ValueError(f"--seed must be a non-negative integer, got {self.seed!r}")
        if not _is_int(self.workers) or self.workers < 0:
            raise ValueError(f"--workers must be 0 (one per CPU) or a positive integer, got {self.workers!r}")
        if not isinstance(self.start_date, dt.date) or isinstance(self.start_date, dt.datetime):
            raise ValueError(f"--start-date must be a date like 2026-10-01, got {self.start_date!r}")
        for flag, value in (
            ("--malformed-rate", self.malformed_rate),
            ("--duplicate-rate", self.duplicate_rate),
            ("--conflict-rate", self.conflict_rate),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= MAX_RATE:
                raise ValueError(f"{flag} must be a fraction between 0 and {MAX_RATE} (e.g. 0.02 for 2%), got {value!r}")
        if self.duplicate_rate + self.conflict_rate > MAX_RATE:
            raise ValueError(
                f"--duplicate-rate + --conflict-rate must be at most {MAX_RATE}, "
                f"got {self.duplicate_rate} + {self.conflict_rate}"
            )
        if self.format not in FORMATS:
            raise ValueError(f"--format must be one of {', '.join(FORMATS)}, got {self.format!r}")
        if not isinstance(self.out_dir, (str, os.PathLike)) or not str(self.out_dir).strip():
            raise ValueError(f"--out must be a folder path, got {self.out_dir!r}")
        out = os.fspath(self.out_dir)
        if os.path.exists(out) and not os.path.isdir(out):
            raise ValueError(f"--out {out!r} exists and is not a folder; choose another path")
        return self

    @property
    def effective_workers(self) -> int:
        return self.workers or (os.cpu_count() or 1)

    def echo(self) -> dict:
        """The config as JSON-ready values (for the manifest)."""
        d = asdict(self)
        d["out_dir"] = os.fspath(self.out_dir)
        d["start_date"] = self.start_date.isoformat()
        return d


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_int(flag: str, value, maximum: int) -> None:
    if not _is_int(value) or value <= 0:
        raise ValueError(f"{flag} must be a positive integer, got {value!r}")
    if value > maximum:
        raise ValueError(f"{flag} must be at most {maximum:,}, got {value:,}")


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the generator's flags to ``parser`` (e.g. a ``touchline generate`` sub-command)."""
    d = DEFAULTS
    parser.add_argument("--out", default=d["out_dir"], metavar="DIR",
                        help=f"Output folder; channel sub-folders, truth/ and manifest.json go here (default {d['out_dir']}).")
    parser.add_argument("--persons", type=int, default=d["persons"],
                        help=f"Number of simulated persons (default {d['persons']}); ~1.5-2.5 events per person per day.")
    parser.add_argument("--days", type=int, default=d["days"],
                        help=f"Number of simulated days from --start-date (default {d['days']}).")
    parser.add_argument("--seed", type=int, default=d["seed"],
                        help=f"Random seed; the same flags give byte-identical output (default {d['seed']}).")
    parser.add_argument("--start-date", default=d["start_date"].isoformat(), metavar="YYYY-MM-DD",
                        help=f"First simulated day, UTC (default {d['start_date'].isoformat()}).")
    parser.add_argument("--malformed-rate", type=float, default=d["malformed_rate"], metavar="FRACTION",
                        help=f"Fraction of records that are malformed (dead letters), 0-{MAX_RATE} (default {d['malformed_rate']}).")
    parser.add_argument("--duplicate-rate", type=float, default=d["duplicate_rate"], metavar="FRACTION",
                        help=f"Fraction of good records re-emitted as exact copies (default {d['duplicate_rate']}).")
    parser.add_argument("--conflict-rate", type=float, default=d["conflict_rate"], metavar="FRACTION",
                        help=f"Fraction of good records re-emitted with the same event_id but different content "
                             f"(default {d['conflict_rate']}).")
    parser.add_argument("--format", choices=FORMATS, default=d["format"],
                        help="File format: mixed (app and transactions Avro, web and support JSONL), avro or jsonl "
                             "(default mixed).")
    parser.add_argument("--shards", type=int, default=d["shards"],
                        help=f"Files per channel (default {d['shards']}).")
    parser.add_argument("--no-truth", dest="truth", action="store_false", default=True,
                        help="Do not write truth/records.jsonl and truth/persons.jsonl (the labels tests check against).")
    parser.add_argument("--workers", type=int, default=d["workers"],
                        help="Processes generating in parallel; 0 = one per CPU. Output is identical for any value "
                             f"(default {d['workers']}).")
    return parser


def parse_date(text, flag: str = "--start-date") -> dt.date:
    if isinstance(text, dt.datetime):
        raise ValueError(f"{flag} must be a date like 2026-10-01, got {text!r}")
    if isinstance(text, dt.date):
        return text
    try:
        return dt.date.fromisoformat(str(text).strip())
    except ValueError:
        raise ValueError(f"{flag} must be a date like 2026-10-01 (YYYY-MM-DD), got {text!r}") from None


def config_from_args(args: argparse.Namespace) -> GenerateConfig:
    """Build and validate a GenerateConfig from parsed flags; raises ValueError on a bad value."""
    get = lambda name, default: getattr(args, name, default)  # noqa: E731 -- tolerate partial namespaces
    cfg = GenerateConfig(
        out_dir=get("out", DEFAULTS["out_dir"]),
        persons=get("persons", DEFAULTS["persons"]),
        days=get("days", DEFAULTS["days"]),
        seed=get("seed", DEFAULTS["seed"]),
        start_date=parse_date(get("start_date", DEFAULTS["start_date"])),
        malformed_rate=get("malformed_rate", DEFAULTS["malformed_rate"]),
        duplicate_rate=get("duplicate_rate", DEFAULTS["duplicate_rate"]),
        conflict_rate=get("conflict_rate", DEFAULTS["conflict_rate"]),
        format=get("format", DEFAULTS["format"]),
        shards=get("shards", DEFAULTS["shards"]),
        truth=bool(get("truth", DEFAULTS["truth"])),
        workers=get("workers", DEFAULTS["workers"]),
    )
    return cfg.validate()
