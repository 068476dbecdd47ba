variable "project" {
  description = "Google Cloud project id."
  type        = string
}

variable "region" {
  description = "Region of Dataflow jobs, Pub/Sub, the bucket and Cloud Scheduler, e.g. europe-west1."
  type        = string
}

variable "bigquery_location" {
  description = "Location of the BigQuery dataset, e.g. EU (must contain var.region)."
  type        = string
}

variable "dataset_id" {
  description = "BigQuery dataset of the warehouse (the pipelines get --warehouse bigquery://PROJECT.DATASET)."
  type        = string
  default     = "touchline"
}

variable "deletion_protection" {
  description = "Refuse `terraform destroy` / replacement of the warehouse tables. Keep true outside throw-away projects."
  type        = bool
  default     = true
}

variable "bucket_name" {
  description = "Bucket for Dataflow temp/staging files, Touchline staging files and the template specs."
  type        = string
}

variable "staging_retention_days" {
  description = "Touchline staging files and Dataflow temp files older than this are deleted (a committed run's staging is no longer needed)."
  type        = number
  default     = 7
}

variable "image" {
  description = "The Touchline image (deploy/Dockerfile) in Artifact Registry, e.g. europe-west1-docker.pkg.dev/P/touchline/touchline:0.1.0. Workers and launchers use it."
  type        = string
}

variable "artifact_repository" {
  description = "Artifact Registry repository (Docker) holding var.image; created here."
  type        = string
  default     = "touchline"
}

variable "hash_key_secret_version" {
  description = "Secret Manager secret version with the pseudonymization key: projects/P/secrets/NAME/versions/N. The secret itself is created outside Terraform (its value must never be in state)."
  type        = string
}

variable "topic_name" {
  description = "Pub/Sub topic every channel publishes to (attribute channel=..., event_time=...; docs/streaming.md)."
  type        = string
  default     = "touchline-events"
}

variable "max_delivery_attempts" {
  description = "Deliveries of a message before Pub/Sub moves it to the dead-letter topic (5-100). A backstop only: the pipeline turns bad messages into dead_letters rows itself."
  type        = number
  default     = 20
}

variable "enable_streaming_job" {
  description = "Run the streaming Flex Template job. Off until the BigQuery warehouse has a streaming write path (BigQueryWarehouse.write_rows): until then the job's preflight refuses a bigquery:// warehouse. See docs/deploy.md."
  type        = bool
  default     = false
}

variable "stream_max_workers" {
  description = "Upper bound of the streaming job's autoscaling."
  type        = number
  default     = 5
}

variable "stream_machine_type" {
  description = "Worker machine type of the streaming job (Streaming Engine keeps state off the workers, so small machines do)."
  type        = string
  default     = "n2-standard-2"
}

variable "stream_parameters" {
  description = "Extra streaming template parameters (see deploy/flex/stream_metadata.json), e.g. { allowed_lateness = \"1d\", lateness_shards = \"64\" }."
  type        = map(string)
  default     = {}
}

variable "batch_input" {
  description = "gs:// prefix the scheduled batch run reads (one sub-folder per channel: PREFIX/app/, PREFIX/web/, ...)."
  type        = string
}

variable "batch_schedule" {
  description = "Cron schedule (UTC) of the daily batch run."
  type        = string
  default     = "30 2 * * *"
}

variable "batch_max_workers" {
  description = "Upper bound of the batch job's autoscaling."
  type        = number
  default     = 10
}

variable "batch_machine_type" {
  description = "Worker machine type of the batch job (identity and scoring group per person: memory matters more than cores)."
  type        = string
  default     = "n2-highmem-4"
}

variable "batch_parameters" {
  description = "Extra batch template parameters (see deploy/flex/batch_metadata.json), e.g. { identity_lookback_days = \"30\" }."
  type        = map(string)
  default     = {}
}
