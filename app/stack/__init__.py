"""The local stack: the broker (Apache Kafka or Tansu) and SeaweedFS, run from packages."""
