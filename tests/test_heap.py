"""app.logic.heap: the served app freezes its long-lived heap once per page, so full collections skip it."""

from __future__ import annotations

import gc

from app.logic.heap import freeze_once


def _collected_ids() -> set[int]:
    """What a collection traverses: the three generations (frozen objects are in none of them)."""
    return {id(o) for o in gc.get_objects()}


def test_freeze_once_per_tag_moves_the_heap_out_of_the_collections():
    gc.unfreeze()
    try:
        long_lived = [[i] for i in range(10_000)]  # tracked containers, alive across the freeze
        assert id(long_lived[0]) in _collected_ids()
        assert freeze_once("test-heap-page")
        frozen = gc.get_freeze_count()
        assert frozen >= len(long_lived)
        seen = _collected_ids()
        assert not any(id(x) in seen for x in long_lived)
        assert not freeze_once("test-heap-page")  # once per tag: nothing more is frozen
        later = [[1] for _ in range(1000)]  # made after the freeze: collected as before
        assert gc.get_freeze_count() == frozen and id(later[0]) in _collected_ids()
    finally:
        gc.unfreeze()
