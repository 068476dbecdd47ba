# Two identities, each with only what it uses (docs/deploy.md lists why each role is needed).
#   touchline-dataflow: the launcher VM and the workers of both jobs
#   touchline-launch:   Cloud Scheduler's identity; it may only start jobs that run as touchline-dataflow

resource "google_service_account" "dataflow" {
  account_id   = "touchline-dataflow"
  display_name = "Touchline Dataflow launcher and workers"
}

resource "google_service_account" "launch" {
  account_id   = "touchline-launch"
  display_name = "Touchline scheduled launches (Cloud Scheduler)"
}

# -- the pipelines' service account -------------------------------------------------------------
resource "google_project_iam_member" "dataflow_worker" {
  project = var.project
  role    = "roles/dataflow.worker"
  member  = google_service_account.dataflow.member
}

# query jobs (commit MERGEs, staging loads) run in the project
resource "google_project_iam_member" "bigquery_job_user" {
  project = var.project
  role    = "roles/bigquery.jobUser"
  member  = google_service_account.dataflow.member
}

# Storage Read sessions: snapshots of stored state and --<channel>_table sources
resource "google_project_iam_member" "bigquery_read_session" {
  project = var.project
  role    = "roles/bigquery.readSessionUser"
  member  = google_service_account.dataflow.member
}

# tables: only this dataset
resource "google_bigquery_dataset_iam_member" "dataflow_data_editor" {
  dataset_id = google_bigquery_dataset.touchline.dataset_id
  role       = "roles/bigquery.dataEditor"
  member     = google_service_account.dataflow.member
}

# temp, staging and snapshot files: only this bucket
resource "google_storage_bucket_iam_member" "dataflow_objects" {
  bucket = google_storage_bucket.pipeline.name
  role   = "roles/storage.objectAdmin"
  member = google_service_account.dataflow.member
}

# read the subscription (and check it exists at launch)
resource "google_pubsub_subscription_iam_member" "dataflow_subscriber" {
  subscription = google_pubsub_subscription.events.id
  role         = "roles/pubsub.subscriber"
  member       = google_service_account.dataflow.member
}

resource "google_pubsub_subscription_iam_member" "dataflow_subscription_viewer" {
  subscription = google_pubsub_subscription.events.id
  role         = "roles/pubsub.viewer"
  member       = google_service_account.dataflow.member
}

# the pseudonymization key (--hash_key_source secret:...): only that secret
resource "google_secret_manager_secret_iam_member" "dataflow_hash_key" {
  secret_id = regex("^(projects/[^/]+/secrets/[^/]+)/versions/[^/]+$", var.hash_key_secret_version)[0]
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.dataflow.member
}

# pull the image: only this repository
resource "google_artifact_registry_repository_iam_member" "dataflow_image_reader" {
  location   = google_artifact_registry_repository.touchline.location
  repository = google_artifact_registry_repository.touchline.name
  role       = "roles/artifactregistry.reader"
  member     = google_service_account.dataflow.member
}

# -- the scheduler's identity -------------------------------------------------------------------
resource "google_project_iam_member" "launch_dataflow_developer" {
  project = var.project
  role    = "roles/dataflow.developer"
  member  = google_service_account.launch.member
}

# launch jobs that run as touchline-dataflow (and nothing else)
resource "google_service_account_iam_member" "launch_acts_as_dataflow" {
  service_account_id = google_service_account.dataflow.name
  role               = "roles/iam.serviceAccountUser"
  member             = google_service_account.launch.member
}

# read the template spec files
resource "google_storage_bucket_iam_member" "launch_templates" {
  bucket = google_storage_bucket.pipeline.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.launch.member
}
