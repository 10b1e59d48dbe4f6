"""The application layer: the messaging service of a server and its hub; the terminal client's session."""
