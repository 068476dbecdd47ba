output "warehouse" {
  description = "The --warehouse value of both pipelines."
  value       = local.warehouse
}

output "subscription" {
  description = "The --subscription of the streaming pipeline."
  value       = google_pubsub_subscription.events.id
}

output "topic" {
  description = "Where producers publish (attributes channel and event_time)."
  value       = google_pubsub_topic.events.id
}

output "dataflow_service_account" {
  description = "Run jobs as this account (--service_account_email)."
  value       = google_service_account.dataflow.email
}

output "batch_template" {
  description = "Where `gcloud dataflow flex-template build` must write the batch template spec."
  value       = local.batch_template
}

output "stream_template" {
  description = "Where `gcloud dataflow flex-template build` must write the streaming template spec."
  value       = local.stream_template
}

output "bucket" {
  description = "Temp, staging and template bucket."
  value       = local.bucket
}
