"""The pipeline's routes: one RM + one policy per label source. `icm` (the ICM labels), `human` (gold/human labels,
merged into `icm` where the labels are the same) and the control `random` (the same pairs, seeded coin-flip labels)."""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from pathlib import Path

from ..data.preferences import PreferenceExample, write_preferences_jsonl
from ..reward.data import load_pairs, split_spec

ROUTE_NAMES = {"icm": "ICM-RM", "human": "gold-RM", "random": "random-RM"}


def seed_suffix(seed: int | None, seeds: list, tag: str = "s") -> str:
    """Folder/policy-name suffix of a seed: none for the first (the folders of a one-seed run), `_s3` for RL seed 3
    (`tag` r: `_r3` for RM seed 3)."""
    return "" if seed == seeds[0] else f"_{tag}{seed}"


def policy_name(route: str, suffix: str = "") -> str:
    """eval-policy's name of a route's policy (`suffix`: `seed_suffix`)."""
    return f"{route}_rm_policy{suffix}"


def display_name(name: str) -> str:
    """`icm_rm_policy` → `ICM-RM policy`; `icm_rm` and `rm_icm` (eval-rm's name) → `ICM-RM`, `icm_rm_r1` and
    `rm_icm_r1` → `ICM-RM (seed 1)`; others as they are."""
    rm_seed = re.fullmatch(r"(.+)_r(\d+)", name)
    base = rm_seed.group(1) if rm_seed else name
    for route, shown in ROUTE_NAMES.items():
        if name == policy_name(route):
            return f"{shown} policy"
        if base in (f"{route}_rm", f"rm_{route}"):
            return shown + (f" (seed {rm_seed.group(2)})" if rm_seed else "")
    return name


def _key(e: PreferenceExample) -> str:
    return json.dumps([e.prompt, e.chosen, e.rejected], sort_keys=True, ensure_ascii=False)


def _exists(spec: str) -> bool:
    return Path(split_spec(spec)[0]).exists()


def same_labels(a: str, b: str) -> bool:
    """Two preference files hold the same pairs with the same preferred side (order and ids aside)."""
    if not (_exists(a) and _exists(b)):
        return False
    return Counter(map(_key, load_pairs(a).examples)) == Counter(map(_key, load_pairs(b).examples))


def write_random_labels(src: str, dst: Path, seed: int) -> dict:
    """The pairs of `src` with each preference flipped by a seeded fair coin → `dst`; how many were flipped."""
    examples = load_pairs(src).examples
    rng = random.Random(f"random_labels|{seed}")
    out, flipped = [], 0
    for e in examples:
        flip = rng.random() < 0.5
        flipped += flip
        out.append(PreferenceExample(id=e.id, prompt=e.prompt, chosen=e.rejected if flip else e.chosen,
                                     rejected=e.chosen if flip else e.rejected))
    write_preferences_jsonl(dst, out)
    return {"n": len(out), "flipped": flipped, "seed": seed}


def _preferred(spec: str) -> dict[str, str]:
    """pair (prompt + both responses, unordered) → the preferred response."""
    return {json.dumps([e.prompt, sorted(map(str, (e.chosen, e.rejected)))], ensure_ascii=False): str(e.chosen)
            for e in load_pairs(spec).examples}


def agreement(a: str, b: str) -> float | None:
    """Share of the pairs two preference files share on which they prefer the same response (None: none shared)."""
    if not (_exists(a) and _exists(b)):
        return None
    pa, pb = _preferred(a), _preferred(b)
    common = [k for k in pa if k in pb]
    return sum(pa[k] == pb[k] for k in common) / len(common) if common else None
