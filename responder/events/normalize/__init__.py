"""Converters: what real tools emit (scanner reports, audit logs, monitor results) → SecurityEvent v1.

One module per format, each a pure function from a byte stream to drafts and rejections
(`registry.Format.read`); `core.finish` applies the rules every converter shares (stable ids,
report time or the caller's, bounded attributes, secrets scrubbed, schema validation), and
`convert.convert` runs one report end to end. No I/O besides reading the given stream: the CLI
(`responder convert`) and the worker's reports stage (`streams/reports.py`) do the rest.
"""

from responder.events.normalize.convert import Output, Summary, choose, convert, run
from responder.events.normalize.core import Context, Rejected
from responder.events.normalize.registry import FORMATS, NAMES, Format, detect

__all__ = [
    "FORMATS",
    "NAMES",
    "Context",
    "Format",
    "Output",
    "Rejected",
    "Summary",
    "choose",
    "convert",
    "detect",
    "run",
]
