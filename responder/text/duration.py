"""Durations as rule and playbook files write them: `30s`, `10m`, `6h`, `1d`, or seconds."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

_DURATION = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d|w)\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any) -> timedelta:
    """`30m`, `6h`, `10s`, `1d` or a number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = int(m.group(1)) * _UNITS[m.group(2)]
    else:
        raise ValueError(f"invalid duration {value!r}: use e.g. 30s, 10m, 6h, 1d")
    if not seconds > 0:  # NaN too
        raise ValueError("a duration must be positive")
    try:
        return timedelta(seconds=seconds)
    except OverflowError:  # .inf, 1e300, 99999999999999d
        raise ValueError(f"duration {value!r} is too long") from None
