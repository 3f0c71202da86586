"""The log beyond Kafka: cold segments in S3, replay, restore, rebuild, and the broker's epoch."""
