"""Helpers for building a million small Python objects at once (rows fetched, payloads made)."""

from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def cycle_collector_paused(promote_survivors: bool = False) -> Iterator[None]:
    """Pause Python's cyclic garbage collector while acyclic data (flat rows, payload trees) is built.

    A million new containers set the collector off every 700 and it walks them for nothing, which costs
    more than building them; reference counting still frees everything as usual. With
    `promote_survivors`, the new containers then join the oldest generation directly (freeze, then
    unfreeze, when nothing else uses the permanent generation) instead of being walked once more by the
    next young collection only to survive it."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            if promote_survivors and gc.get_freeze_count() == 0:
                gc.freeze()
                gc.unfreeze()
            gc.enable()
