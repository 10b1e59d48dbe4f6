"""The local channel: the bus between the worker processes of one `minimess serve --workers N`."""
