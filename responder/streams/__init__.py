"""The Kafka side: topics, the five batched stages, the correlation message format, the worker."""
