"""responder: event-driven incident response for AI/ML systems."""

__version__ = "0.1.0"
