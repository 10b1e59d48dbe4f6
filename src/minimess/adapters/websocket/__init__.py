"""The WebSocket adapter: wire codec, per-connection tasks, and the server."""
