"""Logging for every entry point: `configure(level, fmt)` sets up structlog and stdlib logging."""

from responder.logs.setup import NOISY_LOGGERS, configure

__all__ = ["NOISY_LOGGERS", "configure"]
