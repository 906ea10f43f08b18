"""Public contracts as the README documents them, read from the README itself."""

from __future__ import annotations

import json
import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def replay_keys() -> list[str]:
    """The keys of one `replay --json` object, in the order of the README's example."""
    blocks = re.findall(r"```json\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    [example] = [b for b in blocks if b.lstrip().startswith('{"rule"')]
    return list(json.loads(example))
