"""Adapters: the technologies minimess talks to (WebSocket, the in-memory bus, Kafka, the terminal)."""
