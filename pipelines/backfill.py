"""``touchline backfill``: the batch pipeline once per day over a date range, in order, resumable.

    touchline backfill --input 'data/daily/{date}' --from_date 2026-10-01 --to_date 2026-11-29 \
        --warehouse touchline.duckdb [any batch flag]

Each day is an ordinary ``touchline batch`` run (the same incremental path: it reads only the
stored state its input can affect) with ``--logical_date`` the day and ``{date}`` in ``--input`` /
``--<channel>_input`` replaced by it (``YYYY-MM-DD``); ``--<channel>_table`` inputs read that
day. A day whose run is already in ``pipeline_runs`` (same inputs, date and settings: the run id)
is skipped; a day that fails commits nothing (the commit is one transaction), so after a failure the
same command resumes at the failed day. Progress: one line per day on stderr, a summary line per
day on stdout.
"""

from __future__ import annotations

import datetime as dt
import sys

from .options import BatchOptions, ConfigError, date_flag, parse_pipeline_args, resolve_batch

PLACEHOLDER = "{date}"
_OWN = ("--from_date", "--to_date", "--logical_date")


def _without(argv: list[str], flags: tuple[str, ...]) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in flags:
            skip = "=" not in arg
            continue
        out.append(arg)
    return out


def days_between(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def _committed(plan) -> bool:
    try:
        return bool(plan.warehouse.query("SELECT 1 FROM pipeline_runs WHERE run_id = ? LIMIT 1", [plan.run_id]))
    except Exception:  # noqa: BLE001 -- no pipeline_runs table yet: nothing committed
        return False


def run(argv: list[str], progress_enabled: bool | None = None, out=None) -> int:
    from . import batch
    from .progress import Progress

    out = out or sys.stdout
    options = parse_pipeline_args([a.replace(PLACEHOLDER, "2000-01-01") for a in argv], "touchline backfill")
    opts = options.view_as(BatchOptions)
    if not opts.from_date:
        raise ConfigError("touchline backfill needs --from_date (the first day to run)", "pass --from_date YYYY-MM-DD")
    first = date_flag("--from_date", opts.from_date)
    last = date_flag("--to_date", opts.to_date, first)
    if last < first:
        raise ConfigError(f"--to_date {last} is before --from_date {first}", "swap them")
    tables = any(arg.split("=", 1)[0].endswith("_table") for arg in argv)
    if not tables and not any(PLACEHOLDER in arg for arg in argv):
        raise ConfigError("every day would read the same input",
                          f"put {PLACEHOLDER} where the day goes in --input (e.g. --input 'data/daily/{PLACEHOLDER}')")
    days = days_between(first, last)
    progress = Progress(len(days), enabled=progress_enabled)
    base = _without(argv, _OWN)
    for day in days:
        iso = day.isoformat()
        day_argv = [a.replace(PLACEHOLDER, iso) for a in base] + ["--logical_date", iso, "--from_date", iso, "--to_date", iso]
        try:
            with progress.phase(f"{iso}"):
                day_options = parse_pipeline_args(day_argv, "touchline backfill")
                plan = resolve_batch(day_options)
                try:
                    if _committed(plan):
                        print(f"{iso}  already committed (run {plan.run_id}): skipped", file=out, flush=True)
                        continue
                    result = batch.run_plan(plan, day_options)
                finally:
                    plan.warehouse.close()
        except ConfigError as exc:
            resume = f"days before {iso} are committed; run the same command again to resume at {iso}"
            raise ConfigError(f"day {iso}: {exc.problem}", f"{exc.fix}; then {resume}" if exc.fix else resume) from None
        except Exception as exc:  # noqa: BLE001 -- a failed day commits nothing; say where to resume
            raise ConfigError(f"day {iso} failed ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                              f"nothing of it was committed",
                              f"days before {iso} are committed; fix the cause and run the same command again to resume "
                              f"at {iso} (--debug shows the stack)") from exc
        counts = result.counters
        read = sum(v for k, v in counts.items() if k.endswith(".read"))
        state = sum(v for k, v in counts.items() if k.startswith("state."))
        print(f"{iso}  {read:,} read, {result.rows_written.get('touchpoints', 0):,} touchpoints, "
              f"{state:,} stored rows read, {result.seconds:.1f} s (run {result.run_id})", file=out, flush=True)
    return 0


__all__ = ["run", "days_between"]
