"""A stage running in the test's own event loop for the duration of a block."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Protocol, TypeVar


class Stage(Protocol):
    async def start(self) -> None: ...

    async def run(self) -> None: ...

    async def stop(self) -> None: ...


S = TypeVar("S", bound=Stage)


@asynccontextmanager
async def running(stage: S) -> AsyncIterator[S]:
    """Start `stage`, run it in a task, and cancel and stop it when the block ends."""
    await stage.start()
    task = asyncio.ensure_future(stage.run())
    try:
        yield stage
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await stage.stop()


async def settle(done: Callable[[], bool], tries: int = 300) -> None:
    """Give `done()` up to `tries` tenths of a second to hold (the caller asserts on it)."""
    for _ in range(tries):
        if done():
            return
        await asyncio.sleep(0.1)
