"""Tests of the Kafka worker (issue 5): real broker, real PostgreSQL."""
