"""Flex Template launch: what ``deploy/flex/{batch,stream}_main.py`` run inside the template image.

The launcher calls the same entry points as the CLI (``batch.run`` / ``streaming.run``); the only
additions are defaults that hold for the Touchline image (the SDK is in the container, so nothing is
staged) and one clear log line per anticipated error, which Dataflow shows as the launch failure.
"""

from __future__ import annotations

import logging
import sys

log = logging.getLogger("touchline")

#: Flags the template image implies unless the launch passes them.
IMAGE_DEFAULTS = {
    # the Beam SDK is installed in the worker image: do not download and stage an SDK tarball
    "batch": (("--sdk_location", "container"),
              # the launcher exits once the job exists: the job commits its own tables (CommitRun)
              ("--commit", "pipeline")),
    "stream": (("--sdk_location", "container"),),
}


def with_image_defaults(kind: str, argv: list[str]) -> list[str]:
    given = {a.split("=", 1)[0] for a in argv if a.startswith("--")}
    return [*argv, *(f"{flag}={value}" for flag, value in IMAGE_DEFAULTS.get(kind, ()) if flag not in given)]


def main(kind: str) -> int:
    """The launcher modules' entry: log at INFO (the launcher's log is the launch's only output)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return launch(kind, sys.argv[1:])


def launch(kind: str, argv: list[str]) -> int:
    """Run the ``batch`` or ``stream`` pipeline with the launcher's flags; 0 when the job was created."""
    from touchline.transforms.warehouse import WarehouseError

    from .options import ConfigError

    argv = with_image_defaults(kind, argv)
    try:
        if kind == "batch":
            from . import batch

            result = batch.run(argv, prog="touchline batch (flex template)")
            log.info("batch run %s: %s", result.run_id, result.extra.get("commit", "committed by the launcher"))
        elif kind == "stream":
            from . import streaming

            streaming.run(argv, prog="touchline stream (flex template)")
        else:
            raise ValueError(f"unknown template {kind!r}; use batch or stream")
    except (ConfigError, WarehouseError) as exc:
        log.error("touchline %s: %s", kind, exc)
        print(f"touchline {kind}: error: {exc}", file=sys.stderr)
        return 2
    return 0
