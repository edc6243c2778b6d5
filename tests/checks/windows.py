"""Test windows drawn, not chosen: (seed, end date) pairs from a random generator seeded by the
draw number, which is today's date unless DATA_PLATFORM_TEST_DRAW says otherwise.

Every assertion message names the draw, so a failure is reproduced with
`DATA_PLATFORM_TEST_DRAW=<draw> pytest ...`. Tests load this file by path (tests are not a
package and pytest imports them in importlib mode).
"""

from __future__ import annotations

import os
import random
from datetime import date, timedelta

DRAW_ENV = "DATA_PLATFORM_TEST_DRAW"
SEEDS = tuple(range(10))


def draw_number() -> int:
    raw = os.environ.get(DRAW_ENV, "").strip()
    return int(raw) if raw else date.today().toordinal()


def draw_windows(
    n: int, first_end: date, last_end: date, *, salt: str, draw: int | None = None
) -> list[tuple[int, date]]:
    """`n` distinct (seed, end date) pairs, end dates uniform in [first_end, last_end]."""
    draw = draw_number() if draw is None else draw
    rng = random.Random(f"{salt}:{draw}")
    span = (last_end - first_end).days
    pairs: list[tuple[int, date]] = []
    while len(pairs) < n:
        pair = (rng.choice(SEEDS), first_end + timedelta(days=rng.randrange(span + 1)))
        if pair not in pairs:
            pairs.append(pair)
    return pairs


def reproduce(draw: int | None = None) -> str:
    draw = draw_number() if draw is None else draw
    return f"draw {draw} (reproduce with {DRAW_ENV}={draw})"

