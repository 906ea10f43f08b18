"""Prometheus metrics: what the worker counts (`worker.py`, the process's default registry,
served on `RESPONDER_METRICS__PORT`), what the API counts (`api.py`, a registry per app, served
at `/v1/metrics`), and the label rules both follow (`labels.py`, pure): every label takes its
values from a bounded set, so no input can grow the number of series without limit."""
