"""The WebSocket client: a link to a server that comes back by itself, with its backoff."""
