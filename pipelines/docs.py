"""Generated documentation: the warehouse table reference (``docs/tables.md``) from ``schemas/``.

    python -m touchline.pipelines.docs tables            print it
    python -m touchline.pipelines.docs tables --write    rewrite docs/tables.md (``make docs``)

A test fails when ``docs/tables.md`` differs from what this generates, so the reference stays true as
tables are added. Example queries are kept here too: each names the tables it needs, and the
integration tests run every example whose tables exist against the BigQuery emulator.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass

from touchline import schemas
from touchline.schemas import TableSpec
from touchline.schemas import bigquery as bq
from touchline.schemas import duckdb as ddb
from touchline.schemas.model import Column, columns

WRITE_MODES = {
    "merge": "merge by key (a re-run replaces its rows)",
    "insert_if_absent": "insert if the key is new (the first row wins)",
    "replace": "replaced as a whole",
    "replace_scope": "per person, every row from the recomputed day on is replaced",
}


@dataclass(frozen=True)
class Example:
    title: str
    requires: tuple[str, ...]
    sql: str
    note: str = ""


EXAMPLES = (
    Example(
        "Dead letters by reason, last 7 days", ("dead_letters",),
        """SELECT channel, reason, failed_step, COUNT(*) AS dead_letters,
       ANY_VALUE(error_message) AS example_message
FROM dead_letters
WHERE logical_date >= DATE_SUB(CURRENT_DATE(), INTERVAL 7 DAY)
GROUP BY channel, reason, failed_step
ORDER BY dead_letters DESC""",
        "`raw_payload` holds the input as received (e-mails and phones replaced by keyed hashes) to replay a fix.",
    ),
    Example(
        "Touchpoints and people per channel and day", ("touchpoints",),
        """SELECT event_date, channel, COUNT(*) AS touchpoints, COUNT(DISTINCT person_id) AS persons
FROM touchpoints
WHERE event_date BETWEEN DATE_SUB(CURRENT_DATE(), INTERVAL 7 DAY) AND CURRENT_DATE()
GROUP BY event_date, channel
ORDER BY event_date, channel""",
        "`touchpoints` requires a filter on `event_date` in BigQuery: it prunes partitions, so you pay for the days you read.",
    ),
    Example(
        "Survey answers and app platforms (maps and arrays in SQL)", ("touchpoints",),
        """SELECT channel, survey_kind,
       (SELECT a.value FROM UNNEST(attributes) AS a WHERE a.key = 'platform') AS platform,
       COUNT(*) AS answers, ROUND(AVG(survey_score), 2) AS avg_score
FROM touchpoints
WHERE event_date >= DATE_SUB(CURRENT_DATE(), INTERVAL 30 DAY) AND survey_kind IS NOT NULL
GROUP BY channel, survey_kind, platform
ORDER BY channel, survey_kind, platform""",
        "Map columns are `ARRAY<STRUCT<key, value>>` in BigQuery (`UNNEST`), `MAP` in DuckDB (`attributes['platform']`).",
    ),
    Example(
        "What each run read and wrote", ("pipeline_runs",),
        """SELECT logical_date, run_id, status, runner,
       (SELECT SUM(m.value) FROM UNNEST(metrics) AS m WHERE m.name LIKE '%.read') AS events_read,
       (SELECT SUM(m.value) FROM UNNEST(metrics) AS m WHERE m.name LIKE '%.dead_letter.%') AS dead_letters
FROM pipeline_runs
WHERE logical_date >= DATE_SUB(CURRENT_DATE(), INTERVAL 30 DAY)
ORDER BY logical_date DESC, run_id""",
    ),
    Example(
        "Score trend per role, weekly", ("person_scores_daily",),
        """SELECT role, DATE_TRUNC(score_date, WEEK(MONDAY)) AS week,
       ROUND(AVG(score), 1) AS avg_score,
       ROUND(APPROX_QUANTILES(score, 10)[OFFSET(1)], 1) AS p10_score,
       COUNTIF(score_source = 'observed') AS observed_days, COUNT(*) AS person_days
FROM person_scores_daily
WHERE score_date >= DATE_SUB(CURRENT_DATE(), INTERVAL 12 WEEK)
GROUP BY role, week
ORDER BY role, week""",
        "Scores are 0-100, higher is better; `role = 'all'` is the combined human-experience view, not a sum.",
    ),
    Example(
        "Worst journeys this week", ("journeys",),
        """SELECT person_id, role, start_time, end_time, outcome,
       ARRAY_TO_STRING(channel_path, ' > ') AS path,
       ARRAY_TO_STRING(friction_flags, ', ') AS friction,
       ROUND(signal_weight + friction_weight, 2) AS weight
FROM journeys
WHERE start_date >= DATE_TRUNC(CURRENT_DATE(), WEEK(MONDAY))
ORDER BY weight ASC
LIMIT 20""",
        "Negative weights are bad experiences: the most negative journeys come first.",
    ),
)


def _bq_type(col: Column) -> str:
    field = bq.field(col)
    text = bq.column_type(field)
    return text + (" NOT NULL" if field["mode"] == "REQUIRED" else "")


def _ddb_type(col: Column) -> str:
    return ddb.column_type(col) + ("" if col.nullable else " NOT NULL")


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _layout(spec: TableSpec) -> str:
    parts = [f"partitioned by day on `{spec.partition_by}`" if spec.partition_by else "not partitioned"]
    if spec.cluster_by:
        parts.append("clustered by " + ", ".join(f"`{c}`" for c in spec.cluster_by))
    if spec.require_partition_filter:
        parts.append("queries must filter on the partition column")
    return "; ".join(parts)


def _rows(col: Column, prefix: str = "") -> list[str]:
    name = prefix + col.name
    out = [f"| `{name}` | `{_ddb_type(col)}` | `{_bq_type(col)}` | {_cell(col.doc)} |"]
    nested = col.item if col.kind in ("array", "map") else col
    if nested is not None and nested.kind == "record":
        for sub in nested.fields:
            out += _rows(sub, name + ("[]." if col.kind == "array" else "."))
    return out


def tables_markdown() -> str:
    specs = schemas.table_schemas()
    lines = [
        "# Warehouse tables",
        "",
        "<!-- Generated from schemas/*.avsc by `python -m touchline.pipelines.docs tables --write` (make docs).",
        "     Do not edit by hand: tests/test_docs.py fails when this file is out of date. -->",
        "",
        "Every table exists with the same name and columns in DuckDB (the embedded default) and BigQuery",
        "(production); both are generated from the Avro schemas in `schemas/`. Timestamps are UTC. How rows",
        "get there (staging, MERGE, transactions) is in [warehouse.md](warehouse.md).",
        "",
        "| table | one row is | key | write mode | BigQuery layout |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, spec in specs.items():
        key = ", ".join(f"`{k}`" for k in spec.key)
        lines.append(f"| [`{name}`](#{name}) | {_cell(spec.doc)} | {key} | {spec.write} | {_layout(spec)} |")
    for name, spec in specs.items():
        lines += ["", f"## {name}", "", _cell(spec.doc), ""]
        lines.append(f"* **Key:** {', '.join(f'`{k}`' for k in spec.key)}; **write mode:** `{spec.write}`: {WRITE_MODES[spec.write]}")
        if spec.scope_by:
            lines.append(f"* **Recompute scope:** person `{spec.scope_by[0]}`, from day `{spec.scope_by[1]}`")
        lines.append(f"* **BigQuery:** {_layout(spec)}")
        lines += ["", "| column | DuckDB | BigQuery | description |", "| --- | --- | --- | --- |"]
        for col in columns(spec.schema):
            lines += _rows(col)
    lines += ["", "# Example queries", "",
              "BigQuery SQL, run with the dataset as the default dataset (`bq query --dataset_id=PROJECT:DATASET`,",
              "or qualify tables as `` `PROJECT.DATASET.table` ``). DuckDB runs most of them with small changes",
              "(`attributes['platform']` for map lookups, `current_date - INTERVAL 7 DAY`). The test suite runs every",
              "example whose tables exist against the BigQuery emulator."]
    for example in EXAMPLES:
        missing = [t for t in example.requires if t not in specs]
        lines += ["", f"## {example.title}", ""]
        if missing:
            lines += [f"*Uses {', '.join(f'`{t}`' for t in missing)}, being added in parallel (column names may still change).*", ""]
        lines += ["```sql", example.sql, "```"]
        if example.note:
            lines += ["", example.note]
    return "\n".join(lines) + "\n"


def default_path() -> str:
    return os.path.join(os.getcwd(), "docs", "tables.md")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m touchline.pipelines.docs", description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=["tables"])
    parser.add_argument("--write", nargs="?", const=default_path(), default=None, metavar="PATH",
                        help="write the file (default docs/tables.md under the current folder) instead of printing it")
    args = parser.parse_args(argv)
    text = tables_markdown()
    if args.write:
        with open(args.write, "w", encoding="utf-8") as fh:
            fh.write(text)
        print(f"wrote {args.write}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
