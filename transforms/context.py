"""What every step of one run needs to know: picklable, small, no clients or keys inside."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from .packing import Shuffle

EPOCH_DATE = dt.date(1970, 1, 1)


@dataclass(frozen=True)
class RunContext:
    run_id: str
    logical_date: dt.date
    hash_key_source: str = "env:TOUCHLINE_HASH_KEY"
    pipeline: str = "batch"
    #: hash buckets of every batch shuffle (see touchline.transforms.batches); streaming ignores it
    buckets: int = 32
    #: where shuffled tables are spilled to files (see touchline.transforms.packing); None: inline
    spill_dir: str | None = None

    @property
    def shuffle(self):
        """How this run's batches cross shuffles (buckets, spill folder)."""
        return Shuffle(self.buckets, self.spill_dir)

    @property
    def logical_day(self) -> int:
        """Days since the epoch (the Avro ``date`` representation)."""
        return (self.logical_date - EPOCH_DATE).days
