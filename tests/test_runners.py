"""Which runner a batch pipeline gets: the FnApiRunner when the local runner is named (Beam's
DirectRunner would first try to download Prism), the named runner otherwise."""

from __future__ import annotations

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.runners.portability.fn_api_runner import fn_runner
from apache_beam.testing.util import assert_that, equal_to

from touchline.pipelines.runners import batch_pipeline


@pytest.mark.parametrize("flags", [[], ["--runner", "DirectRunner"], ["--runner=SwitchingDirectRunner"], ["--runner", "direct"]])
def test_the_local_runner_is_the_fn_api_runner(flags):
    options = PipelineOptions(flags)
    p = batch_pipeline(options)
    assert isinstance(p.runner, fn_runner.FnApiRunner)
    assert options.view_as(StandardOptions).runner  # named (pipeline_runs records it)


@pytest.mark.parametrize("name", ["BundleBasedDirectRunner", "PrismRunner"])
def test_other_runners_are_used_as_named(name):
    p = batch_pipeline(PipelineOptions(["--runner", name]))
    assert type(p.runner).__name__ == name


def test_streaming_keeps_the_switching_runner():
    p = batch_pipeline(PipelineOptions(["--runner", "DirectRunner", "--streaming"]))
    assert not isinstance(p.runner, fn_runner.FnApiRunner)


def test_multi_processing_runs_in_sdk_worker_processes():
    """--direct_running_mode / --direct_num_workers choose the FnApiRunner's workers, as they do
    behind the DirectRunner: the graph runs in other processes."""
    import os

    here = os.getpid()
    options = PipelineOptions(["--direct_running_mode=multi_processing", "--direct_num_workers=2"])
    with batch_pipeline(options) as p:
        pids = p | beam.Create([1, 2, 3]) | beam.Map(lambda x: (x * 2, os.getpid() != here))
        assert_that(pids, equal_to([(2, True), (4, True), (6, True)]))
