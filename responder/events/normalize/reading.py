"""Reading reports of any size in bounded memory.

JSON documents are parsed as a stream of tokens (`ijson`, its C backend): only the values at
the paths a converter asks for are built as Python objects, one at a time, so a 200 MB Trivy
report never sits in memory whole. JSON Lines are read line by line, each line capped.
"""

from __future__ import annotations

import io
from collections.abc import Collection, Iterator
from typing import IO, Any

import ijson
import orjson

from responder.events.normalize.core import Invalid

MAX_LINE = 16 * 1024 * 1024
MAX_NESTING = 128  # below orjson's limit (254), far above any tool's report (~20)
HEAD = 64 * 1024

START = object()  # marks the start of an object at a `marks` path


class Head(io.RawIOBase):
    """A stream whose first bytes were read for detection, readable again from the start."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self._head = memoryview(head)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def peek(stream: IO[bytes], size: int = HEAD) -> tuple[bytes, IO[bytes]]:
    """The first `size` bytes and a stream that still starts at the beginning (the same stream,
    rewound, when it can seek: converters that read twice need that)."""
    if stream.seekable():
        start = stream.tell()
        head = stream.read(size)
        stream.seek(start)
        return head, stream
    head = stream.read(size)
    return head, io.BufferedReader(Head(head, stream), buffer_size=256 * 1024)


def look(stream: IO[bytes], size: int = 4096) -> bytes:
    """The next bytes of a stream `peek` returned, without consuming them."""
    if stream.seekable():
        start = stream.tell()
        head = stream.read(size)
        stream.seek(start)
        return head
    peeker = getattr(stream, "peek", None)
    return bytes(peeker(size)[:size]) if peeker is not None else b""


def walk(
    stream: IO[bytes],
    items: Collection[str],
    keep: Collection[str] = (),
    marks: Collection[str] = (),
    *,
    multiple: bool = False,
) -> Iterator[tuple[str, Any]]:
    """Stream a JSON document, yielding `(path, value)`:

    - each complete value found at a path in `items` or `keep` (ijson paths: `Results.item`),
      built as a Python object (numbers as float/int);
    - `(path, START)` when an object or array starts at a path in `marks`.

    Everything else is skipped without being built. `multiple` reads concatenated documents
    (JSON Lines). Malformed JSON, or nesting deeper than `MAX_NESTING`, raises `Invalid`.

    Paths are tracked here over ijson's `basic_parse` rather than taken from `ijson.parse`:
    the latter builds a path string per token, so a few hundred kilobytes of `[[[[...` cost
    gigabytes before any limit could apply.
    """
    wanted = set(items) | set(keep)
    marked = set(marks)
    builder: Any = None
    building = ""
    depth = 0
    # per open container outside a built value: [its path, is it a list, the current key]
    stack: list[list[Any]] = []
    try:
        for event, value in ijson.basic_parse(stream, use_float=True, multiple_values=multiple):
            if builder is not None:
                builder.event(event, value)
                if event == "start_map" or event == "start_array":
                    depth += 1
                    if depth + len(stack) > MAX_NESTING:
                        raise Invalid(f"nested deeper than {MAX_NESTING} levels")
                elif event == "end_map" or event == "end_array":
                    depth -= 1
                    if depth == 0:
                        yield building, builder.value
                        builder = None
                continue
            if event == "map_key":
                stack[-1][2] = value
                continue
            if event == "end_map" or event == "end_array":
                stack.pop()
                continue
            if not stack:
                path = ""
            else:
                parent, is_list, key = stack[-1]
                child = "item" if is_list else key
                path = f"{parent}.{child}" if parent else child
            if event == "start_map" or event == "start_array":
                if path in marked:
                    yield path, START
                if path in wanted:
                    builder = ijson.ObjectBuilder()
                    builder.event(event, value)
                    building, depth = path, 1
                    continue
                if len(stack) >= MAX_NESTING:
                    raise Invalid(f"nested deeper than {MAX_NESTING} levels")
                stack.append([path, event == "start_array", None])
            elif path in wanted:
                yield path, value
    except ijson.JSONError as exc:
        # the first line only: yajl's message goes on to quote the input, which may be a secret
        raise Invalid(
            f"malformed JSON: {str(exc).splitlines()[0] if str(exc) else 'parse error'}"
        ) from None
    except UnicodeDecodeError as exc:
        raise Invalid(f"not UTF-8: {exc}") from None


def lines(stream: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    """Non-blank lines with their numbers (from 1); a line over `MAX_LINE` raises `Invalid`."""
    number = 0
    while True:
        line = stream.readline(MAX_LINE + 1)
        if not line:
            return
        number += 1
        if len(line) > MAX_LINE and not line.endswith(b"\n"):
            raise Invalid(f"line {number}: longer than {MAX_LINE} bytes")
        if line.strip():
            yield number, line


def json_lines(stream: IO[bytes]) -> Iterator[tuple[str, Any]]:
    """`("line N", value)` per JSON line; an unreadable line yields `("line N", Invalid)`."""
    for number, line in lines(stream):
        try:
            yield f"line {number}", orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            yield f"line {number}", Invalid(f"line {number}: invalid JSON: {exc}")


def first_char(head: bytes) -> bytes:
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    return stripped[:1]
