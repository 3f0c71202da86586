"""Adapters: the thin layer between the pure domain and Kafka, S3 and Faust."""
