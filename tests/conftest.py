"""Shared fixtures. Tests name the Beam runner explicitly (the default would try to fetch Prism)."""

from __future__ import annotations

import os

import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline

from touchline.transforms.context import RunContext
from touchline.transforms.identifiers import DEMO_KEY, Hasher

from .emulators import bigquery_emulator  # noqa: F401 -- session fixture: the BigQuery API emulator
from .pubsub_emulator import pubsub_emulator  # noqa: F401 -- session fixture: the real Pub/Sub emulator

import datetime as dt

#: the engine behind Beam's DirectRunner for batch, named directly: the DirectRunner itself first tries to
#: download and run Prism (apache-beam >= 2.68), so a machine with internet would test another runner
RUNNER = "FnApiRunner"
STREAMING_RUNNER = "BundleBasedDirectRunner"


def beam_pipeline(*flags: str) -> TestPipeline:
    """A TestPipeline on the named local runner (never Beam's default, which fetches Prism)."""
    return TestPipeline(runner=RUNNER, options=PipelineOptions(list(flags)), blocking=True)


def stream_pipeline(*flags: str) -> TestPipeline:
    """A TestPipeline in streaming mode on the DirectRunner's streaming engine (TestStream, state, timers)."""
    return TestPipeline(runner=STREAMING_RUNNER, options=PipelineOptions(["--streaming", *flags]), blocking=True)


@pytest.fixture
def ctx() -> RunContext:
    return RunContext(run_id="test-run", logical_date=dt.date(2026, 10, 31), hash_key_source="demo")


@pytest.fixture
def hasher() -> Hasher:
    return Hasher(DEMO_KEY)


@pytest.fixture(autouse=True)
def _no_ambient_key(monkeypatch):
    """Tests never depend on a key in the developer's environment."""
    monkeypatch.delenv("TOUCHLINE_HASH_KEY", raising=False)
    yield


def repo_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
