"""The Kafka adapter: Apache Kafka as the bus between servers, with Thrift-encoded envelopes."""
