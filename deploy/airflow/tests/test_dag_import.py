"""The DAG under a real Airflow (opt-in: `make test-airflow`, which builds .venv-airflow with
apache-airflow and apache-airflow-providers-google; tests/test_airflow_dag.py checks it without Airflow)."""

from __future__ import annotations

import os

import pytest

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def dag(tmp_path_factory):
    os.environ.setdefault("AIRFLOW_HOME", str(tmp_path_factory.mktemp("airflow")))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    try:
        from airflow.dag_processing.dagbag import DagBag  # Airflow >= 3.1
    except ImportError:
        from airflow.models import DagBag
    bag = DagBag(dag_folder=os.path.join(HERE, "touchline_batch.py"))
    assert not bag.import_errors, bag.import_errors
    assert "touchline_batch" in bag.dags, sorted(bag.dags)
    return bag.dags["touchline_batch"]  # (get_dag would read the metadata database)


def test_dag_imports_with_one_flex_template_task(dag):
    from airflow.providers.google.cloud.operators.dataflow import DataflowStartFlexTemplateOperator

    assert [t.task_id for t in dag.tasks] == ["run_batch"]
    task = dag.get_task("run_batch")
    assert isinstance(task, DataflowStartFlexTemplateOperator)
    assert task.wait_until_finished is True
    assert task.append_job_name is False
    assert dag.catchup is True and dag.max_active_runs == 1
    assert "body" in task.template_fields


def test_body_renders_the_logical_date(dag):
    task = dag.get_task("run_batch")
    params = {k: (v.value if hasattr(v, "value") else v) for k, v in dict(dag.params).items()}
    context = {"ds": "2026-10-31", "ds_nodash": "20261031", "params": params}
    body = task.render_template(task.body, context)
    launch = body["launchParameter"]
    assert launch["jobName"] == "touchline-batch-20261031"
    assert launch["parameters"]["logical_date"] == "2026-10-31"
    assert launch["parameters"]["input"].endswith("/2026-10-31")
    assert launch["parameters"]["warehouse"].startswith("bigquery://")
    assert "{{" not in repr(body)
