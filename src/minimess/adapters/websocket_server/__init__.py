"""The WebSocket server: HTTP routes, accepted connections, the outbound path, tracing."""
