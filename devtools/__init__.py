"""Developer tools: a local Kafka, a local cluster behind a proxy, and process helpers the tests share."""
