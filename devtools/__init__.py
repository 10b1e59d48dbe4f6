"""Developer tools: a local Kafka, a local cluster behind a proxy, and the process helpers they and the tests share."""
