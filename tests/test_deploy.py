"""deploy/: generated files are current, the Flex Template metadata matches the flags, the Dockerfile's
Beam equals pyproject's, Terraform is formatted and names every table, topic and job it should."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tomllib

import apache_beam
import pytest

from touchline import schemas
from touchline.pipelines import deploy
from touchline.pipelines.options import ConfigError, parse_pipeline_args
from touchline.schemas.bigquery import table_fields

from .conftest import repo_root

ROOT = repo_root()
DEPLOY = os.path.join(ROOT, "deploy")
TERRAFORM = os.path.join(DEPLOY, "terraform")


def read(*parts: str) -> str:
    with open(os.path.join(ROOT, *parts), encoding="utf-8") as fh:
        return fh.read()


# -- generated files ---------------------------------------------------------------------------
@pytest.mark.parametrize("path", deploy.generated_paths())
def test_generated_file_is_up_to_date(path):
    assert sorted(deploy.generated_paths()) == sorted(deploy.generated_files())
    assert os.path.exists(os.path.join(ROOT, path)), f"{path} is missing: run `make deploy-files`"
    assert read(path) == deploy.generated_files()[path], (
        f"{path} is out of date with the options/schemas: run `make deploy-files` "
        f"(python -m touchline.pipelines.deploy all --write) and commit the result")


# -- Flex Template metadata --------------------------------------------------------------------
SAMPLES = {
    "logical_date": ("2026-10-31", "31/10/2026"),
    "from_date": ("2026-10-01", "yesterday"),
    "warehouse": ("bigquery://my-proj.touchline", "mysql://x"),
    "hash_key_source": ("secret:projects/p/secrets/touchline-key/versions/3", "hunter2"),
    "allowed_lateness": ("30m", "half an hour"),
    "dedup_horizon": ("1d", "1 day"),
    "subscription": ("projects/p/subscriptions/touchline-events", "projects/p/topics/x/y"),
    "identity_degree_caps": ("device_id=20,email=50", "device_id:20"),
    "identity_lookback_days": ("30", "-1"),
    "journey_gap_hours": ("12.5", "twelve"),
    "replay_on_restart": ("off", "maybe"),
    "channels": ("app,web", "app; web"),
    "input": ("gs://bucket/events", "bucket/events"),
}


@pytest.mark.parametrize("template", deploy.TEMPLATES, ids=lambda t: t.name)
def test_metadata_has_every_flag_of_the_options_classes(template):
    meta = json.loads(read(deploy.metadata_path(template)))
    params = meta["parameters"]
    names = [p["name"] for p in params]
    assert len(names) == len(set(names))
    flags = []
    for cls in template.option_classes:
        import argparse

        parser = argparse.ArgumentParser(add_help=False)
        cls._add_argparse_args(parser)
        flags += [a.dest for a in parser._actions]
    excluded = set(deploy.EXCLUDED) | set(deploy.EXCLUDED_PER_TEMPLATE.get(template.name, {}))
    assert names == [f for f in flags if f not in excluded]
    for p in params:
        assert p["label"] and p["helpText"] and isinstance(p["isOptional"], bool), p
        for regex in p.get("regexes", []):
            re.compile(regex)
    assert meta["streaming"] is template.streaming
    assert not next(p for p in params if p["name"] == "warehouse")["isOptional"]


@pytest.mark.parametrize("template", deploy.TEMPLATES, ids=lambda t: t.name)
def test_metadata_regexes_accept_good_values_and_reject_bad_ones(template):
    params = {p["name"]: p for p in json.loads(read(deploy.metadata_path(template)))["parameters"]}
    checked = 0
    for name, (good, bad) in SAMPLES.items():
        if name not in params:
            continue
        (regex,) = params[name]["regexes"]
        assert re.fullmatch(regex, good), (name, good)
        assert not re.fullmatch(regex, bad), (name, bad)
        checked += 1
    assert checked >= 5
    # every typed flag (int/float/choices) has a regex: Dataflow rejects a bad value before launching
    for name in ("bigquery_read_streams", "identity_lookback_days", "write_batch_size", "lateness_shards"):
        if name in params:
            assert params[name]["regexes"] == [r"^[0-9]+$"]


@pytest.mark.parametrize("template", deploy.TEMPLATES, ids=lambda t: t.name)
def test_every_template_parameter_is_accepted_by_the_strict_parser(template):
    """The launcher gets parameters as --name=value; an unknown name would stop the launch."""
    params = json.loads(read(deploy.metadata_path(template)))["parameters"]
    def value(p):
        regex = (p.get("regexes") or [""])[0]
        if p["name"] in SAMPLES:
            return SAMPLES[p["name"]][0]
        choices = re.fullmatch(r"\^\((\w+)\|.*", regex)
        return {r"^[0-9]+$": "1", r"^[0-9]+(\.[0-9]+)?$": "1.5"}.get(regex, choices.group(1) if choices else "x")

    argv = [f"--{p['name']}={value(p)}" for p in params]
    parse_pipeline_args(argv, "touchline")
    with pytest.raises(ConfigError, match="unknown flag"):
        parse_pipeline_args(["--not_a_parameter=1"], "touchline")


# -- Dockerfile -------------------------------------------------------------------------------
def test_dockerfile_beam_matches_pyproject_and_installed_beam():
    text = read("deploy", "Dockerfile")
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as fh:
        project = tomllib.load(fh)["project"]
    (pin,) = [d for d in project["dependencies"] if d.startswith("apache-beam")]
    spec = pin.split("==", 1)[1]  # 2.77.*
    (image_beam,) = re.findall(r"^ARG BEAM_VERSION=(\S+)$", text, re.M)
    assert re.fullmatch(re.escape(spec).replace(r"\*", r"\d+"), image_beam), (
        f"deploy/Dockerfile builds on Beam {image_beam} but pyproject pins apache-beam=={spec}: change both together")
    assert apache_beam.__version__.split(".")[:2] == image_beam.split(".")[:2]
    assert f"apache/beam_python3.11_sdk:${{BEAM_VERSION}}" in text
    assert "startswith('2.77.')" in text and image_beam.startswith("2.77.")


def test_dockerfile_python_versions_agree():
    text = read("deploy", "Dockerfile")
    sdk = re.findall(r"apache/beam_python(\d)\.(\d+)_sdk", text)
    launcher = re.findall(r"python(\d)(\d+)-template-launcher-base", text)
    assert sdk and launcher and set(sdk) == set(launcher), (sdk, launcher)
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as fh:
        requires = tomllib.load(fh)["project"]["requires-python"]
    major, minor = sdk[0]
    assert requires == ">=3.11" and (int(major), int(minor)) >= (3, 11)


def test_dockerfile_copies_what_exists_and_points_at_the_launchers():
    text = read("deploy", "Dockerfile")
    for line in re.findall(r"^COPY (?!--from)(.+)$", text, re.M):
        for src in line.split()[:-1]:
            assert os.path.exists(os.path.join(ROOT, src)), f"Dockerfile copies {src}, which does not exist"
    assert "/opt/google/dataflow/python_template_launcher" in text
    assert 'ENTRYPOINT ["/opt/apache/beam/boot"]' in text
    for template in deploy.TEMPLATES:
        assert os.path.exists(os.path.join(DEPLOY, "flex", template.launcher))
        assert template.launcher in text
    code = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    assert "FLEX_TEMPLATE_PYTHON_SETUP_FILE" not in code and "FLEX_TEMPLATE_PYTHON_REQUIREMENTS_FILE" not in code
    assert re.search(r"^RUN pip install --no-cache-dir \./src", code, re.M), "touchline is installed non-editable"


def test_launcher_reports_a_bad_flag_in_one_line(tmp_path):
    proc = subprocess.run(
        [os.path.join(ROOT, ".venv", "bin", "python") if os.path.exists(os.path.join(ROOT, ".venv", "bin", "python"))
         else "python", os.path.join(DEPLOY, "flex", "batch_main.py"), "--inptu", str(tmp_path)],
        capture_output=True, text=True, timeout=120, cwd=str(tmp_path))
    assert proc.returncode == 2, proc.stderr
    assert "unknown flag --inptu (did you mean --input?)" in proc.stderr


# -- Terraform --------------------------------------------------------------------------------
def test_terraform_is_formatted():
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.fail("terraform is not on PATH: install it (https://developer.hashicorp.com/terraform/install) "
                    "to check deploy/terraform formatting")
    proc = subprocess.run([terraform, "fmt", "-check", "-recursive", "-diff", TERRAFORM],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"run `terraform fmt -recursive deploy/terraform`:\n{proc.stdout}{proc.stderr}"


def test_terraform_tables_are_the_schemas():
    data = json.loads(read("deploy", "terraform", "tables.tf.json"))
    tables = data["resource"]["google_bigquery_table"]
    specs = schemas.table_schemas()
    assert set(tables) == set(specs), "every warehouse table, and no staging-only record"
    for name, spec in specs.items():
        table = tables[name]
        assert table["table_id"] == name
        assert table["deletion_protection"] == "${var.deletion_protection}"
        assert json.loads(table["schema"]) == table_fields(spec)
        if spec.partition_by:
            assert table["time_partitioning"] == [{"type": "DAY", "field": spec.partition_by}]
            assert table["require_partition_filter"] is spec.require_partition_filter
        else:
            assert "time_partitioning" not in table
        assert table.get("clustering", []) == list(spec.cluster_by)[:4]
    assert tables["touchpoints"]["require_partition_filter"] is True


def _terraform_text() -> str:
    return "\n".join(read("deploy", "terraform", f) for f in sorted(os.listdir(TERRAFORM)) if f.endswith(".tf"))


def test_terraform_declares_the_infrastructure():
    text = _terraform_text()
    for resource in ('google_bigquery_dataset" "touchline', 'google_pubsub_topic" "events',
                     'google_pubsub_topic" "events_dead_letter', 'google_pubsub_subscription" "events',
                     'google_dataflow_flex_template_job" "stream', 'google_cloud_scheduler_job" "batch_daily',
                     'google_service_account" "dataflow', 'google_storage_bucket" "pipeline'):
        assert f'resource "{resource}"' in text, resource
    job = text[text.index('resource "google_dataflow_flex_template_job"'):]
    assert re.search(r'on_delete\s*=\s*"drain"', job[:job.index("\n}\n")])
    assert re.search(r"dead_letter_policy\s*{\s*dead_letter_topic\s*=\s*google_pubsub_topic\.events_dead_letter\.id", text)
    assert "flexTemplates:launch" in text


def test_terraform_roles_are_least_privilege():
    roles = set(re.findall(r'role\s*=\s*"(roles/[^"]+)"', _terraform_text()))
    broad = {"roles/owner", "roles/editor", "roles/bigquery.admin", "roles/dataflow.admin", "roles/storage.admin",
             "roles/pubsub.admin", "roles/iam.serviceAccountAdmin", "roles/secretmanager.admin"}
    assert roles and not roles & broad, roles & broad
    assert "roles/dataflow.worker" in roles and "roles/bigquery.dataEditor" in roles


def test_terraform_variables_are_declared_and_parameters_exist():
    text = _terraform_text()
    declared = set(re.findall(r'^variable "(\w+)"', text, re.M))
    used = set(re.findall(r"\bvar\.(\w+)", text))
    assert used <= declared, f"undeclared variables: {sorted(used - declared)}"
    params = {t.name: {p["name"] for p in json.loads(read(deploy.metadata_path(t)))["parameters"]} for t in deploy.TEMPLATES}
    jobs = read("deploy", "terraform", "jobs.tf")
    stream_block = jobs[jobs.index('"google_dataflow_flex_template_job"'):jobs.index('"google_cloud_scheduler_job"')]
    batch_block = jobs[jobs.index('"google_cloud_scheduler_job"'):]
    for block, template in ((stream_block, "stream"), (batch_block, "batch")):
        keys = set(re.findall(r"^\s+(\w+)\s*=", block[block.index("merge({"):block.index("}, var.")], re.M))
        assert keys and keys <= params[template], (template, keys - params[template])


# -- docs ----------------------------------------------------------------------------------------
def _anchor(heading: str) -> str:
    return re.sub(r"[^a-z0-9 _-]", "", heading.lower()).replace(" ", "-")


def test_runbook_has_the_sections_the_code_points_to():
    headings = {line[3:].strip() for line in read("docs", "runbook.md").splitlines() if line.startswith("## ")}
    assert "Schema change" in headings
    for sub in ("transforms", "pipelines"):
        for dirpath, _dirs, files in os.walk(os.path.join(ROOT, sub)):
            for name in files:
                if name.endswith(".py"):
                    text = open(os.path.join(dirpath, name), encoding="utf-8").read()
                    for section in re.findall(r"docs/runbook\.md, '([^']+)'", text):
                        assert section in headings, f"{name} points to runbook section {section!r}, which does not exist"


@pytest.mark.parametrize("doc", ["deploy.md", "runbook.md"])
def test_links_of_the_deploy_docs_resolve(doc):
    text = read("docs", doc)
    for target, anchor in re.findall(r"\]\(([^)#:]+\.md)?(?:#([^)]+))?\)", text):
        path = os.path.join(ROOT, "docs", target or doc)
        assert os.path.exists(path), f"{doc} links to {target}, which does not exist"
        if anchor:
            with open(path, encoding="utf-8") as fh:
                anchors = {_anchor(line.lstrip("#").strip()) for line in fh if line.startswith("#")}
            assert anchor in anchors, f"{doc} links to {target or doc}#{anchor}, which has no such heading"


def test_launcher_defaults_commit_in_the_job_and_the_sdk_from_the_image():
    from touchline.pipelines.flex import with_image_defaults

    assert with_image_defaults("batch", ["--input=gs://b/x"]) == [
        "--input=gs://b/x", "--sdk_location=container", "--commit=pipeline"]
    assert with_image_defaults("batch", ["--commit=pipeline", "--sdk_location=/x.tar.gz"]) == [
        "--commit=pipeline", "--sdk_location=/x.tar.gz"]
    assert with_image_defaults("stream", []) == ["--sdk_location=container"]
