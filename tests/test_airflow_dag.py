"""The Airflow DAG (deploy/airflow/touchline_batch.py) without Airflow: its AST says one
DataflowStartFlexTemplateOperator per logical date, the date passed to the template, backfills on.
The same file under real Airflow: `make test-airflow` (opt-in, a separate venv)."""

from __future__ import annotations

import ast
import json
import os

from touchline.pipelines import deploy

from .conftest import repo_root

PATH = os.path.join(repo_root(), "deploy", "airflow", "touchline_batch.py")


def _tree() -> ast.Module:
    with open(PATH, encoding="utf-8") as fh:
        return ast.parse(fh.read(), PATH)


def _calls(tree, name):
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == name]


def _kwargs(call: ast.Call) -> dict[str, ast.AST]:
    return {k.arg: k.value for k in call.keywords}


def _literal(node):
    """ast.literal_eval that leaves names/calls as None (parameters read from the environment)."""
    try:
        return ast.literal_eval(node)
    except ValueError:
        if isinstance(node, ast.Dict):
            return {ast.literal_eval(k): _literal(v) for k, v in zip(node.keys, node.values)}
        return None


def test_dag_is_scheduled_backfill_safe_and_serial():
    (dag,) = _calls(_tree(), "DAG")
    kw = _kwargs(dag)
    consts = {t.id: _literal(n.value) for n in _tree().body if isinstance(n, ast.Assign) for t in n.targets
              if isinstance(t, ast.Name)}
    assert isinstance(kw["dag_id"], ast.Name) and consts[kw["dag_id"].id] == "touchline_batch"
    assert _literal(kw["catchup"]) is True, "backfills need catchup (or `airflow dags backfill`)"
    assert _literal(kw["max_active_runs"]) == 1, "one commit per dataset at a time, history in date order"
    assert _literal(kw["schedule"])
    assert isinstance(kw["start_date"], ast.Call)


def test_one_flex_template_task_passing_the_logical_date():
    tree = _tree()
    imports = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
               and n.module == "airflow.providers.google.cloud.operators.dataflow" for a in n.names}
    assert imports == {"DataflowStartFlexTemplateOperator"}
    (task,) = _calls(tree, "DataflowStartFlexTemplateOperator")
    kw = _kwargs(task)
    assert _literal(kw["task_id"]) == "run_batch"
    assert _literal(kw["wait_until_finished"]) is True, "the task must end when the run's commit is done"
    assert _literal(kw["append_job_name"]) is False, "one active job per date: Dataflow refuses a duplicate name"
    body = _literal(kw["body"])["launchParameter"]
    params = body["parameters"]
    assert params["logical_date"] == "{{ ds }}", "idempotent per logical date: the run's date is the DAG run's"
    assert "{{ ds }}" in params["input"], "each date reads its own input folder"
    assert "{{ ds_nodash }}" in body["jobName"]
    assert body["containerSpecGcsPath"]
    # every parameter the DAG passes is a parameter of the batch template
    (batch,) = [t for t in deploy.TEMPLATES if t.name == "batch"]
    with open(os.path.join(repo_root(), deploy.metadata_path(batch)), encoding="utf-8") as fh:
        known = {p["name"] for p in json.load(fh)["parameters"]}
    assert set(params) <= known, set(params) - known
    assert {"serviceAccountEmail", "tempLocation", "sdkContainerImage"} <= set(body["environment"])


def test_dag_reads_no_airflow_state_at_parse_time():
    """Variables/connections at module level hit the metadata database on every parse."""
    text = open(PATH, encoding="utf-8").read()
    assert "Variable.get" not in text and "BaseHook" not in text
