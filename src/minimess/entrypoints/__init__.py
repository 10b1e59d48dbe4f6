"""The ways into minimess: the command line and the logging setup it starts with."""
