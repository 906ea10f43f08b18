"""The correlation stage's restore keeps the garbage collector out of its way."""

from __future__ import annotations

import gc

from responder.streams.correlate import collection_paused


def test_restore_pauses_garbage_collection_and_puts_it_back() -> None:
    """Inside, no collection runs; afterwards the collector is as it was (on, or left off)."""
    assert gc.isenabled()
    with collection_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with collection_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()
