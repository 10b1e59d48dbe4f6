"""The application layer: use cases, the local hub, wiring, logging and the command line."""
