"""Which Beam runner a batch pipeline runs on.

Beam's ``DirectRunner`` is a switch: since apache-beam 2.68 it first tries the **Prism** runner --
downloading Prism's binary from GitHub on first use -- and only when that fails (no network,
unsupported pipeline) runs the batch graph on the ``FnApiRunner``. Touchline's batch pipelines are
built and measured on the FnApiRunner: ``--direct_running_mode`` / ``--direct_num_workers`` choose
its workers, ``--shuffle_spill`` works around its driver-held shuffles, and the run's counters are
read by their FnApiRunner names. So a run that names the local runner (``DirectRunner``, or no
runner at all) gets the FnApiRunner directly -- the same engine the switch falls back to, with the
same options handed to its workers -- and a machine with internet access runs exactly what one
without does. Any other runner (``DataflowRunner``, ``PrismRunner``, portable runners) is used as
named.
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

#: runner names that mean Beam's switching local runner
LOCAL = ("directrunner", "switchingdirectrunner", "direct", "switchingdirect")


def runs_locally(options: PipelineOptions) -> bool:
    """Whether ``options`` run a batch pipeline on Beam's switching local runner (or name none: then
    ``DirectRunner`` is set, so ``pipeline_runs`` records it -- Beam's default would try Prism first)."""
    standard = options.view_as(StandardOptions)
    if not standard.runner:
        standard.runner = "DirectRunner"
    return isinstance(standard.runner, str) and standard.runner.lower() in LOCAL and not standard.streaming


def fn_api_runner(options: PipelineOptions):
    """The FnApiRunner as Beam's DirectRunner builds it for a batch pipeline (the pipeline options
    go to the SDK workers in their provision info)."""
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.runners.portability.portable_runner import JobServiceHandle

    encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
    return fn_runner.FnApiRunner(
        provision_info=fn_runner.ExtendedProvisionInfo(beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded)))


def batch_pipeline(options: PipelineOptions) -> beam.Pipeline:
    """A ``beam.Pipeline`` for a batch run: on the FnApiRunner when the local runner is named (see
    the module doc), else on the runner the options name."""
    if runs_locally(options):
        return beam.Pipeline(runner=fn_api_runner(options), options=options)
    return beam.Pipeline(options=options)


__all__ = ["batch_pipeline", "fn_api_runner", "runs_locally", "LOCAL"]
