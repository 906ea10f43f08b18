"""Text from events and stored records, made safe to show in a terminal.

The CLI shows what attackers write: event titles, resource ids, group values, step outputs,
error messages. Raw, such text can carry ANSI escape sequences (recolour, move the cursor, set
the window title, OSC 8 hyperlinks), bidi overrides that reorder what is shown, line breaks that
forge extra rows, and rich markup (`[/oops]` makes rich raise, `[link=...]` renders a link).

- `plain` removes control and bidi-control characters (line breaks and tabs become spaces);
- `safe` also escapes rich markup, for text that goes through rich's markup parser;
- `text` gives a `rich.text.Text`, which rich never parses for markup or emoji codes: the form
  for table cells and assembled lines;
- `print_json` prints JSON with every non-ASCII character escaped.
"""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.text import Text

_SPACES = "\t\n\v\f\r\x85\u2028\u2029"
_BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_TABLE: dict[int, str | None] = {
    **{code: None for code in [*range(0x00, 0x20), *range(0x7F, 0xA0)]},
    **{ord(char): None for char in _BIDI},
    **{ord(char): " " for char in _SPACES},
}


_LINES = {**_TABLE, ord("\n"): "\n"}


def plain(value: object, *, lines: bool = False) -> str:
    """`value` as a string without control characters (C0, DEL, C1) or bidi controls; with
    `lines`, newlines are kept (for multi-line messages)."""
    return (value if isinstance(value, str) else str(value)).translate(_LINES if lines else _TABLE)


def safe(value: object, *, lines: bool = False) -> str:
    """`plain(value)` with rich markup escaped, to embed in a markup string."""
    return escape(plain(value, lines=lines))


def text(value: object, style: str = "") -> Text:
    """`plain(value)` as rich Text in `style`: shown as it is, never parsed."""
    return Text(plain(value), style=style)


def print_json(console: Console, data: Any) -> None:
    """Pretty JSON, ASCII only: no control or bidi character reaches the terminal raw."""
    console.print_json(json.dumps(data), ensure_ascii=True)
