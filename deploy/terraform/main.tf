# Touchline on Google Cloud: warehouse dataset (tables: tables.tf.json, generated from schemas/),
# Pub/Sub ingest, the pipelines' service account, the streaming job and the daily batch trigger.
# Order of a first deploy, and what each piece is for: docs/deploy.md.

data "google_project" "this" {
  project_id = var.project
}

locals {
  warehouse       = "bigquery://${var.project}.${var.dataset_id}"
  bucket          = "gs://${google_storage_bucket.pipeline.name}"
  batch_template  = "${local.bucket}/templates/touchline-batch.json"
  stream_template = "${local.bucket}/templates/touchline-stream.json"
  pubsub_agent    = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
  labels          = { app = "touchline" }
}

# -- warehouse ---------------------------------------------------------------------------------
resource "google_bigquery_dataset" "touchline" {
  dataset_id  = var.dataset_id
  location    = var.bigquery_location
  description = "Touchline: customer-journey tables (touchpoints, dead letters, runs, ...). See docs/tables.md."
  labels      = local.labels
  # never drop tables with the dataset; tables carry deletion_protection themselves
  delete_contents_on_destroy = false
}

# -- storage: Dataflow temp/staging, Touchline staging files, template specs -------------------
resource "google_storage_bucket" "pipeline" {
  name                        = var.bucket_name
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  labels                      = local.labels

  lifecycle_rule {
    condition {
      age            = var.staging_retention_days
      matches_prefix = ["touchline-staging/", "tmp/", "staging/"]
    }
    action {
      type = "Delete"
    }
  }
}

resource "google_artifact_registry_repository" "touchline" {
  location      = var.region
  repository_id = var.artifact_repository
  format        = "DOCKER"
  description   = "Touchline worker + Flex Template launcher image (deploy/Dockerfile)."
  labels        = local.labels
}
