"""The core of minimess: message values, their rules, and the ports the core needs."""
