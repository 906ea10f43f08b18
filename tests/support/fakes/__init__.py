"""In-memory fakes of the action ports (`responder.actions.*` Protocols), for unit tests.

Each fake behaves like its real adapter at the port boundary (same errors, same idempotence)
and counts calls, so tests can assert that a side effect happened exactly once.
"""
