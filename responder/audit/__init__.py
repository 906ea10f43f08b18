"""The tamper-evident audit log: the chain arithmetic (pure) and the append-only table."""
