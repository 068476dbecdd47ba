# The streaming job and the daily batch trigger. Both launch the Flex Templates built with
# `gcloud dataflow flex-template build` (docs/deploy.md) into gs://BUCKET/templates/.

resource "google_dataflow_flex_template_job" "stream" {
  provider = google-beta
  count    = var.enable_streaming_job ? 1 : 0

  name                    = "touchline-stream"
  region                  = var.region
  container_spec_gcs_path = local.stream_template
  # stop = drain: in-flight data is written and the next job continues from the subscription
  on_delete               = "drain"
  service_account_email   = google_service_account.dataflow.email
  temp_location           = "${local.bucket}/tmp"
  staging_location        = "${local.bucket}/staging"
  sdk_container_image     = var.image
  enable_streaming_engine = true
  max_workers             = var.stream_max_workers
  machine_type            = var.stream_machine_type
  labels                  = local.labels

  parameters = merge({
    subscription    = google_pubsub_subscription.events.id
    warehouse       = local.warehouse
    hash_key_source = "secret:${var.hash_key_secret_version}"
    staging_dir     = "${local.bucket}/touchline-staging"
  }, var.stream_parameters)

  depends_on = [
    google_pubsub_subscription_iam_member.dataflow_subscriber,
    google_bigquery_dataset_iam_member.dataflow_data_editor,
    google_secret_manager_secret_iam_member.dataflow_hash_key,
  ]
}

# Cloud Scheduler calls the Dataflow API's flexTemplates.launch once a day. The run's logical date
# is the launch day (UTC; the batch template's default); dated inputs and backfills go through the
# Airflow DAG (deploy/airflow/), which passes each logical date explicitly.
resource "google_cloud_scheduler_job" "batch_daily" {
  name      = "touchline-batch-daily"
  region    = var.region
  schedule  = var.batch_schedule
  time_zone = "Etc/UTC"

  retry_config {
    retry_count = 1
  }

  http_target {
    http_method = "POST"
    uri         = "https://dataflow.googleapis.com/v1b3/projects/${var.project}/locations/${var.region}/flexTemplates:launch"
    headers     = { "Content-Type" = "application/json" }
    body = base64encode(jsonencode({
      launchParameter = {
        jobName              = "touchline-batch-scheduled"
        containerSpecGcsPath = local.batch_template
        parameters = merge({
          input           = var.batch_input
          warehouse       = local.warehouse
          hash_key_source = "secret:${var.hash_key_secret_version}"
          staging_dir     = "${local.bucket}/touchline-staging"
        }, var.batch_parameters)
        environment = {
          serviceAccountEmail  = google_service_account.dataflow.email
          tempLocation         = "${local.bucket}/tmp"
          stagingLocation      = "${local.bucket}/staging"
          sdkContainerImage    = var.image
          maxWorkers           = var.batch_max_workers
          machineType          = var.batch_machine_type
          additionalUserLabels = local.labels
        }
      }
    }))

    oauth_token {
      service_account_email = google_service_account.launch.email
      scope                 = "https://www.googleapis.com/auth/cloud-platform"
    }
  }
}
