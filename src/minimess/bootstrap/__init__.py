"""The only place that names concrete adapters: a module per command's object graph, so that each
command imports its own adapters and no other's (a server no terminal UI, a client no server)."""
