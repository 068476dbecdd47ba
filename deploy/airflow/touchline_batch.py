"""Airflow DAG: Touchline's daily batch run on Dataflow (the batch Flex Template), with backfills.

One DAG run per logical date ``ds``: the template gets ``logical_date={{ ds }}`` and that day's input
folder, so a run (or a re-run, or a backfill of a range) of a date always processes the same files
under the same date. Touchline's run id is a fingerprint of the inputs, the date, the key and the
code version, and every table is written by key, so re-running a date replaces that date's rows:
idempotent per logical date.

    airflow dags backfill touchline_batch -s 2026-10-01 -e 2026-10-31      # Airflow 2
    airflow backfill create --dag-id touchline_batch --from-date 2026-10-01 --to-date 2026-10-31   # Airflow 3

Runs go one at a time (``max_active_runs=1``): commits to one dataset are serialized anyway, and a
backfill then replays history in date order, which identity stitching's carried-forward state
expects. Settings come from environment variables of the Airflow deployment (read at parse time,
no metadata-database access) and can be overridden per run through the DAG's params.
Needs ``apache-airflow-providers-google`` and ``apache-airflow-providers-apache-beam`` (the Google
provider's Dataflow hook imports it). docs/deploy.md and docs/runbook.md describe the operation.
"""

from __future__ import annotations

import datetime as dt
import os

from airflow.providers.google.cloud.operators.dataflow import DataflowStartFlexTemplateOperator

try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG

PROJECT = os.environ.get("TOUCHLINE_PROJECT", "my-project")
REGION = os.environ.get("TOUCHLINE_REGION", "europe-west1")
BUCKET = os.environ.get("TOUCHLINE_BUCKET", "gs://my-project-touchline")
DATASET = os.environ.get("TOUCHLINE_DATASET", "touchline")

DAG_ID = "touchline_batch"

with DAG(
    dag_id=DAG_ID,
    description="Touchline batch pipeline (Dataflow Flex Template) per logical date; backfill-safe.",
    schedule="30 2 * * *",
    start_date=dt.datetime(2026, 10, 1, tzinfo=dt.timezone.utc),
    catchup=True,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": dt.timedelta(minutes=15)},
    params={
        "project": PROJECT,
        "region": REGION,
        "template": os.environ.get("TOUCHLINE_BATCH_TEMPLATE", f"{BUCKET}/templates/touchline-batch.json"),
        "image": os.environ.get("TOUCHLINE_IMAGE", f"{REGION}-docker.pkg.dev/{PROJECT}/touchline/touchline:latest"),
        "input_prefix": os.environ.get("TOUCHLINE_INPUT_PREFIX", f"{BUCKET}/landing"),
        "warehouse": f"bigquery://{PROJECT}.{DATASET}",
        "hash_key_source": os.environ.get("TOUCHLINE_HASH_KEY_SOURCE",
                                          f"secret:projects/{PROJECT}/secrets/touchline-hash-key/versions/latest"),
        "service_account": os.environ.get("TOUCHLINE_SERVICE_ACCOUNT",
                                          f"touchline-dataflow@{PROJECT}.iam.gserviceaccount.com"),
        "bucket": BUCKET,
    },
    tags=["touchline"],
) as dag:
    run_batch = DataflowStartFlexTemplateOperator(
        task_id="run_batch",
        project_id="{{ params.project }}",
        location="{{ params.region }}",
        body={
            "launchParameter": {
                # one job name per logical date: easy to find, and the same for a re-run of the date
                "jobName": "touchline-batch-{{ ds_nodash }}",
                "containerSpecGcsPath": "{{ params.template }}",
                "parameters": {
                    "logical_date": "{{ ds }}",
                    "input": "{{ params.input_prefix }}/{{ ds }}",
                    "warehouse": "{{ params.warehouse }}",
                    "hash_key_source": "{{ params.hash_key_source }}",
                    "staging_dir": "{{ params.bucket }}/touchline-staging",
                },
                "environment": {
                    "serviceAccountEmail": "{{ params.service_account }}",
                    "tempLocation": "{{ params.bucket }}/tmp",
                    "stagingLocation": "{{ params.bucket }}/staging",
                    "sdkContainerImage": "{{ params.image }}",
                    "maxWorkers": 10,
                },
            }
        },
        # the batch template commits as its last step: the task succeeds only once the rows are in
        wait_until_finished=True,
        # the job name stays touchline-batch-<date>: Dataflow refuses a second *active* job of that
        # name, so a retry cannot run beside a still-running attempt of the same date
        append_job_name=False,
    )
