"""Avro schemas of touchline-chat (registered under the touchline.schemas entry point group)."""
