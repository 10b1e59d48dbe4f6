"""The browser chat page: the static files the server serves at /."""
