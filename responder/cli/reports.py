"""`responder convert`: one tool report → SecurityEvent v1 JSONL on stdout, a summary on stderr;
and the report options `responder send --format` shares."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import IO, Annotated

import orjson
import typer

from responder.cli.console import err
from responder.cli.options import fail
from responder.events.normalize import NAMES, Context, Rejected, Summary, choose, run
from responder.events.normalize.core import parse_time

FORMAT_HELP = f"the report's format: auto (detect) or one of {', '.join(NAMES)}"
FormatOption = Annotated[str, typer.Option("--format", "-f", help=FORMAT_HELP)]
LabelOption = Annotated[
    list[str] | None,
    typer.Option(
        "--label", "-l", help="KEY=VALUE label on every event (repeatable), e.g. env=prod"
    ),
]
AssetOption = Annotated[
    str | None,
    typer.Option(
        "--asset",
        help="the scanned asset's id (image, repository, model, dataset, endpoint): kept on "
        "every event (attributes.asset); the resource when the report does not name its target, "
        "and always for model scanners, data monitors and garak, whose reports name only local "
        "paths",
    ),
]
TimeOption = Annotated[
    str | None,
    typer.Option(
        "--time",
        help="RFC 3339 time (with offset) for findings whose report carries none; without it "
        "such findings are rejected (the wall clock is never used)",
    ),
]


def parse_labels(values: list[str] | None) -> dict[str, str]:
    labels: dict[str, str] = {}
    for value in values or []:
        key, sep, label = value.partition("=")
        if not sep or not key.strip():
            raise fail(f"--label {value!r}: expected KEY=VALUE")
        labels[key.strip()] = label.strip()
    return labels


def parse_when(value: str | None) -> datetime | None:
    if value is None:
        return None
    when = parse_time(value)
    if when is None:
        raise fail(
            f"--time {value!r}: expected an RFC 3339 time with offset, e.g. 2026-11-25T09:00:00Z"
        )
    return when


def context_of(labels: list[str] | None, asset: str | None, time: str | None) -> Context:
    return Context(labels=parse_labels(labels), asset=asset or None, time=parse_when(time))


@contextmanager
def opened(file: str) -> Iterator[IO[bytes]]:
    """The report file, or stdin (`-`) spooled so converters that read twice can seek."""
    if file == "-":
        with tempfile.SpooledTemporaryFile(max_size=64 * 1024 * 1024) as spool:
            while chunk := sys.stdin.buffer.read(1024 * 1024):
                spool.write(chunk)
            spool.seek(0)
            yield spool
        return
    path = Path(file)
    if not path.is_file():
        raise fail(f"{file}: no such file")
    with path.open("rb") as stream:
        yield stream


def convert(
    file: Annotated[str, typer.Argument(help="the tool's report (- for stdin)")],
    format: FormatOption = "auto",
    label: LabelOption = None,
    asset: AssetOption = None,
    time: TimeOption = None,
    strict: Annotated[bool, typer.Option(help="exit 2 if any finding was rejected")] = False,
) -> None:
    """Convert one scanner, log or monitor report into SecurityEvent v1 JSONL (stdout)."""
    context = context_of(label, asset, time)
    summary = Summary()
    out = sys.stdout.buffer
    with opened(file) as stream:
        chosen = choose(stream, format)
        if isinstance(chosen, Rejected):
            raise fail(f"{file}: {chosen.reason}: {'; '.join(chosen.detail)}")
        fmt, stream = chosen
        for output in run(fmt, stream, context):
            summary.add(output)
            if isinstance(output, dict):
                out.write(orjson.dumps(output) + b"\n")
    out.flush()
    for rejected in summary.rejected:
        where = f"{rejected.where}: " if rejected.where else ""
        detail = f" ({'; '.join(rejected.detail[:3])})" if rejected.detail else ""
        err.print(
            f"{file}: {where}rejected: {rejected.reason}{detail}", highlight=False, markup=False
        )
    counts = ", ".join(f"{t}: {n}" for t, n in sorted(summary.events.items())) or "none"
    skipped = sum(summary.skipped.values())
    err.print(
        f"{fmt.name}: events: {summary.total} ({counts}), rejected: {summary.rejections}, "
        f"skipped: {skipped}",
        highlight=False,
        markup=False,
    )
    for reason, count in sorted(summary.skipped.items()):
        err.print(f"  skipped {count}: {reason}", highlight=False, markup=False)
    if summary.rejections > len(summary.rejected):
        err.print(f"  ... and {summary.rejections - len(summary.rejected)} more rejections")
    if summary.rejections and not summary.total:
        raise typer.Exit(1)
    if strict and summary.rejections:
        raise typer.Exit(2)
