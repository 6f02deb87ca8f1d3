"""Which response is shown on the left: random per annotator and pair, but reproducible.

People have position bias too. Showing each annotator each pair in an order drawn from a
seeded hash (not the pair's id order, not the judge's order) spreads that bias evenly over
both responses, and because the order shown is stored with the label, the same views that
measure the judge's position bias measure people's.
"""

from __future__ import annotations

import hashlib


def shows_second_first(seed: int, annotator: str, pair_id: str) -> bool:
    """True when the pair's second response (in id order) goes on the left for this annotator."""
    digest = hashlib.sha256(f"{seed}\0{annotator}\0{pair_id}".encode()).digest()
    return digest[0] & 1 == 1
