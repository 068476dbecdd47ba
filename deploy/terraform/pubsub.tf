# One topic for every channel, one subscription the streaming job reads (docs/streaming.md: a
# `channel` attribute routes messages; event time is the `event_time` attribute).
resource "google_pubsub_topic" "events" {
  name                       = var.topic_name
  labels                     = local.labels
  message_retention_duration = "604800s" # 7 days on the topic too: a new subscription can seek back
}

resource "google_pubsub_topic" "events_dead_letter" {
  name   = "${var.topic_name}-dead-letter"
  labels = local.labels
}

resource "google_pubsub_subscription" "events" {
  name                 = var.topic_name
  topic                = google_pubsub_topic.events.id
  labels               = local.labels
  ack_deadline_seconds = 60
  # 7 days, and acknowledged messages are kept: a replay after an identity fix or a cancelled job
  # seeks the subscription back (snapshot or time) and the keyed writes absorb the repeats
  message_retention_duration = "604800s"
  retain_acked_messages      = true
  expiration_policy {
    ttl = "" # never expires, even while no job reads it
  }
  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.events_dead_letter.id
    max_delivery_attempts = var.max_delivery_attempts
  }
  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }
}

# Keeps what lands on the dead-letter topic (a topic alone stores nothing) for inspection and replay.
resource "google_pubsub_subscription" "events_dead_letter" {
  name                       = "${var.topic_name}-dead-letter"
  topic                      = google_pubsub_topic.events_dead_letter.id
  labels                     = local.labels
  message_retention_duration = "604800s"
  expiration_policy {
    ttl = ""
  }
}

# Pub/Sub's own service agent forwards undeliverable messages: it must publish to the dead-letter
# topic and acknowledge on the source subscription.
resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  topic  = google_pubsub_topic.events_dead_letter.id
  role   = "roles/pubsub.publisher"
  member = local.pubsub_agent
}

resource "google_pubsub_subscription_iam_member" "dead_letter_forwarder" {
  subscription = google_pubsub_subscription.events.id
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}
