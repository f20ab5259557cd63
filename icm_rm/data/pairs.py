"""Preference-pair plumbing shared by every pairwise source: gold-position placement, transcript splitting, and
pairs → a `ClaimSet` of `A>B`/`B>A` claims with gold kept apart in `GoldLabels`."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .records import ClaimSet, GoldLabels, PreferencePair
from .tasks import Task, render_content

ASSISTANT_TURN = "\n\nAssistant:"
Content = str | list[dict]


@dataclass(frozen=True)
class LabeledPair:
    """A source pair with its gold preference (None: unlabeled) and what the source says about its kind."""

    pair: PreferencePair
    a_better: bool | None
    subset: str | None = None
    margin: float | None = None


@dataclass
class PairSource:
    """Every pair one file yields, plus the rows left out: ties (no preference) and invalid (e.g. identical)."""

    name: str
    pairs: list[LabeledPair] = field(default_factory=list)
    skipped_ties: int = 0
    skipped_invalid: int = 0

    def claimset(self, task: Task) -> ClaimSet:
        """Two claims per pair, gold (reports only) where the source has it."""
        gold = {lp.pair.id: lp.a_better for lp in self.pairs if lp.a_better is not None}
        return pair_claimset([lp.pair for lp in self.pairs], task, self.name, gold)


def better_goes_first(pair_id: str) -> bool:
    """Deterministic coin from the pair id: whether the gold-better response is shown as A (≈ half the pairs)."""
    return hashlib.sha256(pair_id.encode("utf-8")).digest()[0] & 1 == 0


def place(pair_id: str, prompt: Content, better: Content, worse: Content,
          meta: Mapping[str, Any] | None = None) -> tuple[PreferencePair, bool]:
    """A pair with the better response at a hash-chosen position, and whether A is the better one."""
    a_better = better_goes_first(pair_id)
    a, b = (better, worse) if a_better else (worse, better)
    return PreferencePair(id=pair_id, prompt=prompt, response_a=a, response_b=b, meta=dict(meta or {})), a_better


def same_content(x: Content, y: Content) -> bool:
    """Whether two responses say the same thing (ignoring surrounding whitespace)."""
    return render_content(x).strip() == render_content(y).strip()


def split_transcripts(chosen: Content, rejected: Content) -> tuple[Content, Content, Content] | None:
    """Full dialogues sharing a prefix → (prompt, chosen response, rejected response), losslessly.

    Strings (HH-RLHF "\\n\\nHuman: …\\n\\nAssistant: …"): the prompt is the longest common prefix cut just after its
    last "\\n\\nAssistant:", so prompt + response == the original text even when a response itself contains a
    turn marker. Message lists: the prompt is the common leading messages; each response is the rest.
    Returns None when the two dialogues share no such prefix.
    """
    if isinstance(chosen, str) and isinstance(rejected, str):
        common = _common_prefix_len(chosen, rejected)
        cut = chosen.rfind(ASSISTANT_TURN, 0, common)  # the marker must lie wholly inside the shared prefix
        if cut < 0:
            return None
        end = cut + len(ASSISTANT_TURN)
        return chosen[:end], chosen[end:], rejected[end:]
    if isinstance(chosen, list) and isinstance(rejected, list):
        common = _common_prefix_len(chosen, rejected)
        common = min(common, len(chosen) - 1, len(rejected) - 1)
        if common < 1:
            return None
        return chosen[:common], chosen[common:], rejected[common:]
    return None


def _common_prefix_len(x: str | list, y: str | list) -> int:
    n = 0
    for a, b in zip(x, y):
        if a != b:
            break
        n += 1
    return n


def pair_claimset(pairs: Iterable[PreferencePair], task: Task, name: str,
                  a_better: Mapping[str, bool] | None = None) -> ClaimSet:
    """Two claims per pair (one group each); gold for both claims when `a_better` knows the pair."""
    claims, gold, by_id = [], {}, {}
    for pair in pairs:
        by_id[pair.id] = pair
        for claim in task.pair_claims(pair):
            claims.append(claim)
            if a_better is not None and pair.id in a_better:
                gold[claim.id] = a_better[pair.id] if claim.key == "A>B" else not a_better[pair.id]
    return ClaimSet(claims=claims, gold=GoldLabels(gold), pairs=by_id, name=name)
