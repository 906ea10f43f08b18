"""The blast radius section of `responder incidents show` (text and JSON).

Asset ids and names come from a registry or a file someone else wrote: printed as text
(`security.terminal.text`: no markup, control characters replaced)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table

from responder.assets.lineage import blast_rows
from responder.security.terminal import text


def print_blast_radius(console: Console, radius: Mapping[str, Any] | None) -> None:
    if radius is None:
        return
    if not radius.get("size"):
        console.print("blast radius: no known asset (run `responder assets sync`?)")
        return
    table = Table("kind", "asset", "tier / contact", title=f"blast radius ({radius['size']})")
    for kind, asset, extra in blast_rows(radius):
        table.add_row(text(kind), text(asset), text(extra))
    console.print(table)
    if radius.get("critical"):
        console.print(text("touches critical assets: " + ", ".join(radius["critical"]), "bold"))
    if radius.get("truncated"):
        console.print("the blast radius was cut at the walk's limits")
