"""Deterministic, realistic multi-channel sample data for Touchline.

Simulates persons (customers, employees, partners -- some several at once) with a hidden experience
per role, their app sessions, web visits, checkouts, deliveries, support tickets, staff-app use,
partner trips and payouts, and survey answers driven by that experience and their recent failures.
Writes raw channel files (Avro and/or JSONL) with realistic dirt -- duplicates, conflicting
re-emissions, junk and shared identifiers, malformed records of every kind, a corrupt Avro block --
plus ground truth to test the pipeline against::

    from touchline.pipelines.sample_data import GenerateConfig, generate
    manifest = generate(GenerateConfig(out_dir="data/sample", persons=2000, days=30, seed=7))

The same config always gives byte-identical files, whatever the number of worker processes.
See :mod:`.writers` for the layout and :mod:`.malform` for the dead-letter reason codes.
"""

from .config import FORMATS, GenerateConfig, add_arguments, config_from_args
from .runner import generate
from .malform import ALL_REASONS, AVRO_REASONS, CORRUPT_AVRO, JSONL_REASONS
from .writers import CHANNELS, SCHEMA_NAMES, channel_format

__all__ = [
    "GenerateConfig", "generate", "add_arguments", "config_from_args", "FORMATS", "CHANNELS", "SCHEMA_NAMES",
    "channel_format", "JSONL_REASONS", "AVRO_REASONS", "CORRUPT_AVRO", "ALL_REASONS",
]
