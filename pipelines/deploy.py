"""Generated deployment files: Flex Template metadata from the options classes, and the Terraform
BigQuery tables from ``schemas/``.

    python -m touchline.pipelines.deploy metadata            print both templates' metadata.json and step labels
    python -m touchline.pipelines.deploy terraform           print deploy/terraform/tables.tf.json
    python -m touchline.pipelines.deploy all --write         rewrite every generated file under deploy/ (make deploy-files)

Tests (tests/test_deploy.py) fail when a checked-in file differs from what this generates, so a new
flag or a new table column cannot be forgotten in the template or the infrastructure.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import sys
from dataclasses import dataclass

from touchline import schemas
from touchline.schemas.bigquery import table_fields

from .options import BatchOptions, ExperienceOptions, IdentityOptions, StreamOptions, TouchlineOptions

#: Flags that make no sense in a template launched on Dataflow (the reason is shown in tests/docs).
EXCLUDED = {
    "bigquery_endpoint": "emulator override: Dataflow workers talk to BigQuery itself",
    "bigquery_storage_endpoint": "emulator override: Dataflow workers talk to BigQuery itself",
    "stop_after": "local runner only",
    "reset_replay_point": "local runner only (a store_true flag; templates pass --name=value)",
    "commit": "a template always commits in the pipeline (step CommitRun): its launcher exits before the job runs",
}
#: Flags a template's pipeline does not read.
EXCLUDED_PER_TEMPLATE = {
    "stream": {"logical_date": "a stream's dead letters take the day of their message's event time"},
}

_INT = r"^[0-9]+$"
_FLOAT = r"^[0-9]+(\.[0-9]+)?$"
_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_DURATION = r"^[0-9]+(\.[0-9]+)?(ms|s|m|h|d)?$"

#: Regexes of string flags whose values have a shape (Dataflow validates them before launching).
SHAPES = {
    "logical_date": _DATE,
    "from_date": _DATE,
    "to_date": _DATE,
    "allowed_lateness": _DURATION,
    "dedup_horizon": _DURATION,
    "write_max_latency": _DURATION,
    "warehouse": r"^(bigquery://[a-z0-9.:-]+\.[A-Za-z0-9_]+(\?.*)?|.+\.duckdb|duckdb:.+)$",
    "hash_key_source": r"^(env:[A-Za-z_][A-Za-z0-9_]*|file:.+|secret:projects/.+/secrets/.+/versions/.+|demo)$",
    "subscription": r"^(projects/[^/]+/subscriptions/[^/]+|[A-Za-z][A-Za-z0-9._~+%-]{2,254})$",
    "identity_degree_caps": r"^[a-z_]+=[0-9]+(,[a-z_]+=[0-9]+)*$",
    "channels": r"^[a-z0-9_]+(,[a-z0-9_]+)*$",
    "input": r"^(gs://|/).+",
    "staging_dir": r"^(gs://|/).+",
    "scoring_model": r"^(gs://|/).+\.(ya?ml|toml)$",
    "blocklist_file": r"^(gs://|/).+",
    "table_date_column": r"^[A-Za-z_][A-Za-z0-9_]*$",
    "timestamp_attribute": r"^[A-Za-z0-9_.-]+$",
}


@dataclass(frozen=True)
class Template:
    name: str
    title: str
    description: str
    option_classes: tuple
    #: the launcher module (deploy/flex/<file>) the template's FLEX_TEMPLATE_PYTHON_PY_FILE names
    launcher: str
    streaming: bool


TEMPLATES = (
    Template("batch", "Touchline batch",
             "Touchline's batch pipeline: channel files (gs://) and/or BigQuery tables -> parse/validate -> dedup -> "
             "identity stitching -> journeys and experience scores -> BigQuery, committed in one transaction per run. "
             "Idempotent per --logical_date and input.",
             (TouchlineOptions, BatchOptions, IdentityOptions, ExperienceOptions), "batch_main.py", False),
    Template("stream", "Touchline streaming",
             "Touchline's streaming pipeline: one Pub/Sub subscription carrying every channel (attribute channel=...) -> "
             "parse/validate -> lateness gate -> dedup -> warehouse, written by key.",
             (TouchlineOptions, StreamOptions), "stream_main.py", True),
)


def _label(name: str) -> str:
    words = name.split("_")
    return " ".join([words[0].capitalize(), *words[1:]]).replace("Bigquery", "BigQuery")


def _regex(action: argparse.Action) -> str | None:
    name = action.dest
    if action.choices:
        return "^(" + "|".join(re.escape(str(c)) for c in action.choices) + ")$"
    if action.type is int:
        return _INT
    if action.type is float:
        return _FLOAT
    return SHAPES.get(name)


def _help(action: argparse.Action) -> str:
    text = " ".join((action.help or "").split())
    if isinstance(action, argparse._AppendAction):
        text += " (In a template: one pattern; use --input for several channels.)"
    return text


def parameters(template: Template) -> list[dict]:
    """The template's parameters, one per flag of its option classes (minus EXCLUDED), in flag order."""
    out = []
    for cls in template.option_classes:
        parser = argparse.ArgumentParser(add_help=False)
        cls._add_argparse_args(parser)
        for action in parser._actions:
            if action.dest in EXCLUDED or action.dest in EXCLUDED_PER_TEMPLATE.get(template.name, {}):
                continue
            param = {
                "name": action.dest,
                "label": _label(action.dest),
                "helpText": _help(action),
                "isOptional": True,
            }
            regex = _regex(action)
            if regex:
                param["regexes"] = [regex]
            out.append(param)
    # logical_date stays optional: the scheduled launch relies on its default (the launch day, UTC)
    required = {"batch": ("warehouse",), "stream": ("warehouse", "subscription")}[template.name]
    for param in out:
        if param["name"] in required:
            param["isOptional"] = False
    return out


def metadata(template: Template) -> dict:
    meta = {"name": template.title, "description": template.description, "streaming": template.streaming}
    if template.streaming:
        # writes are keyed merges and dedup is explicit, so the cheaper at-least-once mode is correct too
        meta.update(supportsExactlyOnce=True, supportsAtLeastOnce=True, defaultStreamingMode="EXACTLY_ONCE")
    meta["parameters"] = parameters(template)
    return meta


# -- Terraform ------------------------------------------------------------------------------------
def terraform_tables() -> dict:
    """``google_bigquery_table`` resources for every warehouse table, generated from the schemas."""
    resources = {}
    for name, spec in schemas.table_schemas().items():
        table = {
            "dataset_id": "${google_bigquery_dataset.touchline.dataset_id}",
            "table_id": name,
            "description": " ".join(spec.doc.split()),
            "deletion_protection": "${var.deletion_protection}",
            "schema": json.dumps(table_fields(spec), sort_keys=True),
            "labels": {"app": "touchline"},
        }
        if spec.partition_by:
            table["time_partitioning"] = [{"type": "DAY", "field": spec.partition_by}]
            table["require_partition_filter"] = spec.require_partition_filter
        if spec.cluster_by:
            table["clustering"] = list(spec.cluster_by)[:4]
        resources[name] = table
    return {
        "//": "Generated from schemas/*.avsc by `python -m touchline.pipelines.deploy all --write` (make deploy-files). "
              "Do not edit: tests/test_deploy.py fails when it is out of date.",
        "resource": {"google_bigquery_table": resources},
    }


def _dump(data: dict) -> str:
    return json.dumps(data, indent=2, sort_keys=False) + "\n"


def metadata_path(template: Template) -> str:
    return f"deploy/flex/{template.name}/metadata.json"


def labels_path(template: Template) -> str:
    return f"deploy/flex/{template.name}/step_labels.txt"


#: Beam's own auto-generated labels name a line of Beam's source (``Create``'s ``<lambda at
#: core.py:4094>``); the line is dropped so a Beam patch release does not read as a label change.
_BEAM_LINE = re.compile(r"(<lambda at [a-z_]+\.py):\d+>")


def step_labels_text(template: Template) -> str:
    from .graphs import built, step_labels

    labels = [_BEAM_LINE.sub(r"\1>", label) for label in step_labels(built(template.name))]
    header = [
        f"# Step labels of the {template.name} pipeline as Dataflow sees them (full labels, graph order).",
        "# Generated by `python -m touchline.pipelines.deploy all --write` (make deploy-files); tests/test_distribution.py",
        "# fails when the built graph differs. A changed label breaks `--update` of a running streaming job:",
        "# keep labels, or pass --transform_name_mapping='{\"Old\": \"New\"}' with the update (docs/deploy.md).",
    ]
    return "\n".join(header + labels) + "\n"


def generated_paths() -> list[str]:
    """The generated files' paths (cheap: builds nothing)."""
    return ([metadata_path(t) for t in TEMPLATES] + [labels_path(t) for t in TEMPLATES]
            + ["deploy/terraform/tables.tf.json"])


@functools.cache
def generated_files() -> dict[str, str]:
    """Relative path under the repository -> content."""
    files = {metadata_path(t): _dump(metadata(t)) for t in TEMPLATES}
    files.update({labels_path(t): step_labels_text(t) for t in TEMPLATES})
    files["deploy/terraform/tables.tf.json"] = _dump(terraform_tables())
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m touchline.pipelines.deploy", description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=["metadata", "terraform", "all"])
    parser.add_argument("--write", action="store_true", help="write the files under --root instead of printing them")
    parser.add_argument("--root", default=os.getcwd(), help="repository root (default: the current folder)")
    args = parser.parse_args(argv)
    files = generated_files()
    chosen = {p: t for p, t in files.items()
              if args.what == "all" or (args.what == "terraform") == p.startswith("deploy/terraform/")}
    for path, text in chosen.items():
        if args.write:
            full = os.path.join(args.root, path)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "w", encoding="utf-8") as fh:
                fh.write(text)
            print(f"wrote {path}")
        else:
            sys.stdout.write(f"# {path}\n{text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
