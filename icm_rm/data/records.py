"""The records every stage exchanges. Gold labels never live on a `Claim`: they sit in a separate `GoldLabels`
mapping that only reports read, so the search cannot see them even by accident."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

COMPARISON_KEYS = ("A>B", "B>A")
Content = str | list[dict]  # a string, or chat messages {"role", "content"}


def render_messages(messages: Sequence[Mapping[str, Any]], *, capitalize: bool = True) -> str:
    """Template-free text of chat messages, one `Role: content` line per message: the one flattener of messages
    into plain text (claim texts, response likelihoods, RM texts and raw policy prompts without a chat template;
    policy prompts keep the role as written, `capitalize=False`)."""
    def role(m: Mapping[str, Any]) -> str:
        r = str(m.get("role", "user"))
        return r.capitalize() if capitalize else r

    return "\n".join(f"{role(m)}: {m.get('content', '')}" for m in messages)


@dataclass(frozen=True)
class Claim:
    """One True/False claim as the labeler sees it: no label field exists.

    `text` is the full rendered prompt ending in the task's question (e.g. "... I think this claim is");
    `key` is the consistency key derived from content only (comparison direction, extracted answer, candidate);
    `group` ties claims that constrain each other (a swapped pair, the answers to one question).
    """

    id: str
    group: str
    key: str
    text: str
    meta: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), compare=False, hash=False)


@dataclass(frozen=True)
class PreferencePair:
    """A prompt with two responses, in no particular order; the gold preference (if any) lives in `GoldLabels`."""

    id: str
    prompt: str | list[dict]
    response_a: str | list[dict]
    response_b: str | list[dict]
    meta: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), compare=False, hash=False)


class GoldLabels(Mapping[str, bool]):
    """Read-only claim-id → gold label mapping, for reports only. Never passed to the search."""

    def __init__(self, labels: Mapping[str, bool] | None = None):
        self._labels = dict(labels or {})

    def __getitem__(self, key: str) -> bool:
        return self._labels[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._labels)

    def __len__(self) -> int:
        return len(self._labels)

    def __repr__(self) -> str:
        return f"GoldLabels({len(self)} labels)"


@dataclass
class ClaimSet:
    """What a reader or a built-in task produces: claims (what the search sees), gold (reports only), and — for
    pairwise data — the source pairs so labels can be turned back into prompt/chosen/rejected."""

    claims: list[Claim]
    gold: GoldLabels = field(default_factory=GoldLabels)
    pairs: dict[str, PreferencePair] = field(default_factory=dict)
    name: str = ""

    @property
    def has_gold(self) -> bool:
        return len(self.gold) > 0 and all(c.id in self.gold for c in self.claims)

    @property
    def is_pairwise(self) -> bool:
        return bool(self.pairs)

    def groups(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for i, c in enumerate(self.claims):
            out.setdefault(c.group, []).append(i)
        return out

    def subset_groups(self, group_ids: Sequence[str]) -> "ClaimSet":
        keep = set(group_ids)
        claims = [c for c in self.claims if c.group in keep]
        ids = {c.id for c in claims}
        return ClaimSet(claims=claims, gold=GoldLabels({k: v for k, v in self.gold.items() if k in ids}),
                        pairs={k: v for k, v in self.pairs.items() if k in keep}, name=self.name)


def content_order(claimset: ClaimSet) -> ClaimSet:
    """The same claims with each group's members reordered by a hash of their content, in the
    slots the group held: files that list answers in gold-correlated order (the ICM paper's test files put the true
    answer first in every group) must not tell the scorers — whose in-context demonstrations follow pool order —
    anything through position. Deterministic and gold-independent; group order and membership are unchanged. The
    hash is of each claim's own text, not its key: claims sharing a key (GSM8K's right answer) would otherwise move
    together, and the first slot would go to the key with fewer claims (more often a wrong one)."""
    def digest(c: Claim) -> tuple[str, str]:
        return hashlib.sha256(c.text.encode("utf-8")).hexdigest(), c.id

    claims = list(claimset.claims)
    for slots in claimset.groups().values():
        for slot, claim in zip(slots, sorted((claimset.claims[i] for i in slots), key=digest)):
            claims[slot] = claim
    return ClaimSet(claims=claims, gold=claimset.gold, pairs=claimset.pairs, name=claimset.name)
