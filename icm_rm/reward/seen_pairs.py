"""Which preference pairs an RM was trained on, kept as hashes in its model dir, so that eval-rm can say when a
"held-out" set is not held out (the RM's own training file passed as `--data` reads as a near-perfect score)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from ..data.preferences import PreferenceExample
from ..infra.io import atomic_write_json

FILE = "train_pairs.sha256.json"


def pair_key(ex: PreferenceExample) -> str:
    """The pair's prompt and its two responses, in either order (a flipped label is still a seen pair)."""
    text = json.dumps([ex.prompt, sorted([ex.chosen, ex.rejected], key=json.dumps)], sort_keys=True,
                      ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def write_train_pairs(model_dir: str | Path, examples: Sequence[PreferenceExample]) -> None:
    atomic_write_json(Path(model_dir) / FILE, sorted({pair_key(ex) for ex in examples}))


def count_seen(model_dir: str | Path, examples: Sequence[PreferenceExample]) -> int | None:
    """How many of `examples` the RM was trained on; None when the RM carries no record (trained elsewhere)."""
    path = Path(model_dir) / FILE
    try:
        seen = set(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None
    return sum(pair_key(ex) in seen for ex in examples)
