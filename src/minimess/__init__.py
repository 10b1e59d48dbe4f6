"""minimess: a real-time messaging server with topics, fan-out and a broker between servers."""
