"""The ``touchline`` command.

    touchline demo                      generate sample data -> batch pipeline -> DuckDB -> summary
    touchline generate --out DIR        deterministic sample data (+ ground truth)
    touchline batch --input DIR         the batch pipeline (any Beam runner flags after it)
    touchline backfill --input 'DIR/{date}' --from_date A --to_date B   one batch run per day, resumable
    touchline stream --subscription S   the streaming pipeline: Pub/Sub -> warehouse
    touchline publish --input DIR --topic T   replay channel files into Pub/Sub (demos, load tests)
    touchline warehouse init            create/upgrade the warehouse tables
    touchline calibrate                 fit scoring weights to survey answers, report held-out accuracy
    touchline erase --identifier K:V    erase a person (GDPR) and keep them out of later runs
    touchline report --out report.html  a self-contained HTML report of the warehouse (charts, no network)

Long commands print their phases on stderr (``[2/3] running the batch pipeline ...``) with a
heartbeat while a phase runs; ``--quiet`` turns that off.

Every anticipated failure (bad flag, missing file, unknown channel, unreachable warehouse) prints
one message naming the problem and the fix, and exits with status 2; ``--debug`` adds the stack.
"""

from __future__ import annotations

import argparse
import logging
import sys

from touchline.transforms.channels import UnknownChannel
from touchline.transforms.identifiers import KeyError_
from touchline.transforms.warehouse import WarehouseError

from . import __version__
from .options import BatchOptions, ConfigError, ExperienceOptions, IdentityOptions, StreamOptions, TouchlineOptions, add_help_for

log = logging.getLogger("touchline")


class UsageError(Exception):
    pass


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("touchline").setLevel(logging.INFO)
    for noisy in ("apache_beam", "google", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.INFO if verbose else logging.ERROR)


def _progress(args, total: int):
    from .progress import Progress

    return Progress(total, enabled=False if args.quiet else None)


def _cmd_generate(args, _rest) -> int:
    from .sample_data import config_from_args, generate

    with _progress(args, 1).phase(f"generating sample data into {args.out}"):
        manifest = generate(config_from_args(args))
    totals = manifest.get("totals", {})
    print(f"wrote sample data to {args.out}: {totals.get('input_units', '?')} input records "
          f"({totals.get('good', '?')} good, {totals.get('duplicates', '?')} duplicates, "
          f"{totals.get('malformed_total', '?')} malformed)")
    if args.split_by_day:
        from .sample_data.daily import split_by_day

        with _progress(args, 1).phase(f"splitting it into one folder per day under {args.split_by_day}"):
            days = split_by_day(args.out, args.split_by_day)
        print(f"wrote {len(days)} daily folders to {args.split_by_day} ({min(days)} .. {max(days)}): "
              f"touchline backfill --input '{args.split_by_day}/{{date}}' --from_date {min(days)} --to_date {max(days)}")
    return 0


def _cmd_backfill(args, rest) -> int:
    from .backfill import run

    return run(rest, False if args.quiet else None)


def _cmd_batch(args, rest) -> int:
    from . import batch
    from .summary import render
    from touchline.transforms.warehouse import open_warehouse

    progress = _progress(args, 2)
    with progress.phase("running the batch pipeline and committing its tables"):
        result = batch.run(rest, prog="touchline batch")
    with progress.phase("summarizing the run"):
        wh = open_warehouse(result.warehouse)
        try:
            text = render(result, wh)
        finally:
            wh.close()
    print(text)
    return 0


def _cmd_stream(args, rest) -> int:
    from . import streaming

    streaming.run(rest, prog="touchline stream")
    return 0


def _cmd_publish(args, _rest) -> int:
    from . import pubsub_admin
    from .publish import publish

    topic = pubsub_admin.resource_path("topics", args.topic, args.project, "--topic")
    subscription = (pubsub_admin.resource_path("subscriptions", args.subscription, args.project, "--subscription")
                    if args.subscription else None)
    chans = [c.strip() for c in args.channels.split(",") if c.strip()] if args.channels else None
    report = publish(args.input, topic, channels=chans, rate=args.rate, order=args.order,
                     shuffle_window=args.shuffle_window, duplicate_rate=args.duplicate_rate, seed=args.seed,
                     create=args.create, subscription=subscription, limit=args.limit, retime_live=args.retime)
    for created in report.created:
        print(f"created {created}")
    print(report.summary())
    return 0


def _cmd_demo(args, rest) -> int:
    from .demo import run_demo

    print(run_demo(args, rest, _progress(args, 4)))
    return 0


def _cmd_report(args, _rest) -> int:
    from .report import run

    print(run(args, _progress(args, 2)))
    return 0


def _cmd_calibrate(args, rest) -> int:
    from .calibrate import render, run

    print(render(run(rest)))
    return 0


def _cmd_warehouse_init(args, rest) -> int:
    from touchline.transforms.warehouse import open_warehouse

    from .options import with_bigquery_flags

    wh = open_warehouse(with_bigquery_flags(args.warehouse, args.bigquery_endpoint, args.bigquery_storage_endpoint,
                                            args.bigquery_location))
    try:
        done = wh.init()  # reports an unreachable warehouse or missing credentials itself
    finally:
        wh.close()
    print("\n".join(done) if done else f"{wh.url}: all tables up to date")
    return 0


def _cmd_erase(args, _rest) -> int:
    from .erase import run as erase

    print(erase(args))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="touchline", description="Customer-journey analytics on Apache Beam.")
    parser.add_argument("--version", action="version", version=f"touchline {__version__}")
    parser.add_argument("--verbose", action="store_true", help="log progress (and Beam's own logs)")
    parser.add_argument("--debug", action="store_true", help="print stack traces of errors")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    from .sample_data import add_arguments as add_sample_data_arguments

    gen = sub.add_parser("generate", help="write deterministic sample data with ground truth")
    add_sample_data_arguments(gen)
    gen.add_argument("--split-by-day", dest="split_by_day", default=None, metavar="DIR",
                     help="Also write the data as one folder per day, DIR/YYYY-MM-DD/<channel>/ (a daily feed for backfill)")
    gen.set_defaults(func=_cmd_generate, passthrough=False)

    backfill = sub.add_parser("backfill", help="run the batch pipeline day by day over a date range (resumable)",
                              description="Run `touchline batch` once per day from --from_date to --to_date, in order, "
                                          "each day reading its own input ({date} in --input or --<channel>_input is the "
                                          "day, YYYY-MM-DD; --<channel>_table inputs read that day) with --logical_date "
                                          "set to it. A day already committed (same inputs and settings) is skipped, so "
                                          "running the same command again after a failure resumes at the failed day, "
                                          "which committed nothing. Every batch flag applies to every day.")
    add_help_for(backfill, TouchlineOptions, BatchOptions, IdentityOptions, ExperienceOptions)
    backfill.set_defaults(func=_cmd_backfill, passthrough=True)

    batch = sub.add_parser("batch", help="run the batch pipeline", description="Run the batch pipeline. "
                           "Any Beam option (e.g. --runner, --direct_running_mode=multi_processing) may follow.")
    add_help_for(batch, TouchlineOptions, BatchOptions, IdentityOptions, ExperienceOptions)
    batch.set_defaults(func=_cmd_batch, passthrough=True)

    stream = sub.add_parser("stream", help="run the streaming pipeline (Pub/Sub -> warehouse)",
                            description="Run the streaming pipeline: reads the Pub/Sub subscription, writes touchpoints, "
                                        "dead letters, score updates and closed journeys as they arrive. Locally it runs until Ctrl-C; with --runner DataflowRunner "
                                        "it launches the job and exits. Any Beam/Dataflow option may follow.")
    add_help_for(stream, TouchlineOptions, StreamOptions, ExperienceOptions)
    stream.set_defaults(func=_cmd_stream, passthrough=True)

    pub = sub.add_parser("publish", help="replay channel files into a Pub/Sub topic (demos, load tests)",
                         description="Publish every record of channel files (the generator's layout) as one message in "
                                     "Touchline's wire format (attributes channel and event_time).")
    pub.add_argument("--input", required=True, metavar="DIR", help="root folder with one sub-folder per channel")
    pub.add_argument("--topic", required=True, help="projects/PROJECT/topics/NAME, or NAME with --project")
    pub.add_argument("--project", default=None, help="project of short topic/subscription names")
    pub.add_argument("--subscription", default=None, help="also check (or with --create, create) this subscription on the topic")
    pub.add_argument("--create", action="store_true", help="create the topic (and --subscription) if missing")
    pub.add_argument("--channels", default=None, help="comma-separated channels to publish (default: all)")
    pub.add_argument("--rate", type=float, default=0.0, help="messages per second (default 0: as fast as possible)")
    pub.add_argument("--order", choices=("time", "file"), default="time",
                     help="time: in event-time order (default); file: file by file, without loading everything")
    pub.add_argument("--shuffle_window", type=int, default=0,
                     help="let each message arrive up to N places out of order (default 0)")
    pub.add_argument("--duplicate_rate", type=float, default=0.0,
                     help="fraction of messages published twice, like a producer retry (default 0)")
    pub.add_argument("--seed", type=int, default=7, help="seed of the shuffle and the duplicates (default 7)")
    pub.add_argument("--limit", type=int, default=None, help="publish at most N records")
    pub.add_argument("--retime", action="store_true",
                     help="shift event times so the data plays as if it were happening now (live demos)")
    pub.set_defaults(func=_cmd_publish, passthrough=False)

    demo = sub.add_parser("demo", help="generate sample data, run the batch pipeline into DuckDB, print a summary")
    demo.add_argument("--out", default="data/demo", help="folder for the sample data and the warehouse (default data/demo)")
    demo.add_argument("--persons", type=int, default=2000, help="persons to generate (default 2000)")
    demo.add_argument("--days", type=int, default=30, help="days of activity (default 30)")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--fresh", action="store_true", help="regenerate the data and start with an empty warehouse")
    demo.set_defaults(func=_cmd_demo, passthrough=False, extra_ok=True)

    from .calibrate import add_arguments as add_calibrate_arguments

    cal = sub.add_parser("calibrate", help="fit scoring weights to survey answers, report held-out accuracy",
                         description="Fit the scoring model's weights to survey answers in the warehouse and write a "
                                     "new model file; prints AUC and rank correlation, base vs calibrated, on held-out persons.")
    add_calibrate_arguments(cal)
    add_help_for(cal, TouchlineOptions, ExperienceOptions)
    cal.set_defaults(func=_cmd_calibrate, passthrough=True)
    from .erase import add_arguments as add_erase_arguments

    erase = sub.add_parser("erase", help="erase a person's data (by identifier or person id) and keep it out of later runs",
                           description="Delete a person's identifiers, touchpoints and derived rows from every table "
                                       "that declares erase_by, and add their identifier hashes to the erasure list "
                                       "that later runs honour.")
    add_erase_arguments(erase)
    erase.set_defaults(func=_cmd_erase, passthrough=False)

    from .report import add_arguments as add_report_arguments

    rep = sub.add_parser("report", help="write a self-contained HTML report of the warehouse",
                         description="Write one HTML page (inline CSS and SVG, no network) with the runs and sources, "
                                     "score distribution and trend per role, journeys and channel flow, friction and "
                                     "score drivers, dead letters and identity stitching of the warehouse.")
    add_report_arguments(rep)
    rep.set_defaults(func=_cmd_report, passthrough=False)

    wh = sub.add_parser("warehouse", help="manage the warehouse")
    wh_sub = wh.add_subparsers(dest="warehouse_command", metavar="ACTION")
    init = wh_sub.add_parser("init", help="create missing tables (and add new columns) from schemas/")
    init.add_argument("--warehouse", default="touchline.duckdb", help="DuckDB file or bigquery://PROJECT.DATASET")
    init.add_argument("--bigquery_endpoint", default=None, help="BigQuery REST endpoint override (an emulator), e.g. http://127.0.0.1:9050")
    init.add_argument("--bigquery_storage_endpoint", default=None, help="BigQuery Storage Read gRPC endpoint override, e.g. 127.0.0.1:9060")
    init.add_argument("--bigquery_location", default=None, help="location of a new BigQuery dataset, e.g. EU")
    init.set_defaults(func=_cmd_warehouse_init, passthrough=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser()  # loads the channel plug-ins (their flags are generated)
    except ValueError as exc:  # PluginError / SchemaPluginError: a broken plug-in registration
        if "--debug" in argv:
            raise
        print(f"touchline: error: {exc}", file=sys.stderr)
        return 2
    args, rest = parser.parse_known_args(argv)
    _setup_logging(args.verbose)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if rest and not args.passthrough and not getattr(args, "extra_ok", False):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.passthrough:
        # Pipeline commands re-parse their whole argument list strictly (Touchline + Beam flags).
        rest = argv[argv.index(args.command) + 1:]
    try:
        return args.func(args, rest)
    except (ConfigError, WarehouseError, UnknownChannel, KeyError_, UsageError, ValueError) as exc:
        if args.debug:
            raise
        print(f"touchline: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("touchline: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
