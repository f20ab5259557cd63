"""Split a pool into labeling batches of whole consistency groups (variable group sizes allowed).

Groups keep their order of first appearance in the data; a batch is closed when adding the next group would exceed
`batch_size` claims (a single group larger than `batch_size` gets a batch of its own). Deterministic.
"""

from __future__ import annotations

from ..data.records import Claim


def make_batches(claims: list[Claim], batch_size: int) -> list[list[int]]:
    """Lists of claim indices, each a union of whole groups with at most `batch_size` claims where possible."""
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(claims):
        groups.setdefault(c.group, []).append(i)
    batches: list[list[int]] = []
    current: list[int] = []
    for members in groups.values():
        if current and len(current) + len(members) > batch_size:
            batches.append(current)
            current = []
        current = current + members
    if current:
        batches.append(current)
    return batches
