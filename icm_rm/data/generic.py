"""Claims and preference pairs from the user's own JSONL/JSON/CSV(.gz) files, with a field mapping.

Claim rows: `text` (the full claim; "I think this claim is" is appended when missing) or the task template's fields
(`statement`, or `question` + `answer` …); optional `id` (default: the row number), `group` (default: own id),
`key` (default: the normalised `answer`, else the normalised statement/text), `label` (gold, reports only).
Pair rows: TRL `prompt/chosen/rejected` (strings or message lists; without `prompt`, full dialogues are split at
their shared prefix) or unlabeled `prompt/response_a/response_b` (optional `label`: true = A is better).
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any

from ..infra.errors import ConfigError
from .answers import normalize_answer, normalize_text
from .pairs import Content, LabeledPair, PairSource, place, same_content, split_transcripts
from .readers import Row, read_rows
from .records import COMPARISON_KEYS, Claim, ClaimSet, GoldLabels, PreferencePair
from .tasks import QUESTION, Task

CLAIM_FIELDS = ("id", "text", "statement", "question", "answer", "solution", "group", "key", "label")
PAIR_FIELDS = ("id", "prompt", "chosen", "rejected", "response_a", "response_b", "label", "margin")
GENERIC_CLAIMS = Task(name="claims", kind="claims", description="generic claims: 'Claim: {statement}'")


def check_field_map(fields: Mapping[str, str] | None, known: tuple[str, ...]) -> dict[str, str]:
    """A column mapping, normalised to {their column: our field}.

    Either direction is accepted per entry ({"instruction": "prompt"} or {"prompt": "instruction"}); the side that
    names one of our fields is ours, and when both sides do, the value is taken as ours (their → ours).
    """
    if not fields:
        return {}
    if not isinstance(fields, Mapping):
        raise ConfigError("fields", f"expected a mapping of your column → ours, got {type(fields).__name__}")
    out: dict[str, str] = {}
    for k, v in fields.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise ConfigError("fields", f"column names must be strings, got {k!r}: {v!r}")
        if v in known:
            theirs, ours = k, v
        elif k in known:
            theirs, ours = v, k
        else:
            raise ConfigError("fields", f"'{k}: {v}' names none of our fields; known: {', '.join(known)}")
        if ours in out.values():
            raise ConfigError("fields", f"two columns map to our field '{ours}'")
        out[theirs] = ours
    return out


def row_id(row: Row, seen: dict[str, int]) -> str:
    """The row's `id` (default: its row number), checked unique across the file."""
    rid = row.identifier("id") if row.has("id") else str(row.number)
    if rid in seen:
        raise row.error("id", f"duplicate id '{rid}' (first at row {seen[rid]})")
    seen[rid] = row.number
    return rid


# ------------------------------------------------------------------------------------------------------- claims

def read_claims(path: str, task: Task | None = None, fields: Mapping[str, str] | None = None,
                name: str | None = None) -> ClaimSet:
    """A generic claims file → ClaimSet (gold from `label` when every row has one, else whichever rows do)."""
    task = task or GENERIC_CLAIMS
    rows = read_rows(path, check_field_map(fields, CLAIM_FIELDS))
    seen: dict[str, int] = {}
    claims, gold, where = [], {}, {}
    for row in rows:
        cid = row_id(row, seen)
        text = _claim_text(row, task)
        group = row.identifier("group") if row.has("group") else cid
        claims.append(Claim(id=cid, group=group, key=_claim_key(row, task), text=text, meta={"row": row.number}))
        where[cid] = row
        label = row.optional("label", "label")
        if label is not None:
            gold[cid] = label
    if task.kind == "pairs":
        _check_pair_groups(claims, where, task)
    return ClaimSet(claims=claims, gold=GoldLabels(gold), name=name or str(path))


def _claim_text(row: Row, task: Task) -> str:
    if row.has("text"):
        text = row.text("text")
        return text if text.rstrip().endswith(QUESTION) else text.rstrip() + "\n" + QUESTION
    values: dict[str, Any] = {}
    for _, placeholder, _, _ in string.Formatter().parse(task.claim_template):
        if placeholder:
            if not row.has(placeholder) and placeholder == "statement":
                raise row.error("text", f"missing field (give 'text', or 'statement' for task '{task.name}'; this "
                                        f"row has {row.fields_said()}: another "
                                        "column name maps with --fields '{text: COLUMN}')")
            if not row.has(placeholder):
                raise row.error(placeholder, f"missing field (task '{task.name}' template needs it)")
            values[placeholder] = row.text(placeholder)
    return task.render_claim(**values)


def _claim_key(row: Row, task: Task) -> str:
    if row.has("key"):
        return row.identifier("key")
    if task.kind == "pairs":
        raise row.error("key", f"missing field (task '{task.name}' needs the comparison key A>B or B>A)")
    for source in ("answer", "statement", "text"):
        if row.has(source):
            text = row.text(source)
            if source == "answer":
                return normalize_answer(text)
            return normalize_text(text.rstrip().removesuffix(QUESTION))
    raise row.error("text", "missing field")


def _check_pair_groups(claims: list[Claim], where: dict[str, Row], task: Task) -> None:
    groups: dict[str, list[Claim]] = {}
    for c in claims:
        groups.setdefault(c.group, []).append(c)
    for group, members in groups.items():
        keys = sorted(c.key for c in members)
        if keys != sorted(COMPARISON_KEYS):
            row = where[members[-1].id]
            raise row.error("group", f"group '{group}' has keys {keys}; task '{task.name}' needs exactly the two "
                                     f"orderings of a pair (keys A>B and B>A)")


# -------------------------------------------------------------------------------------------------------- pairs

def trl_triple(row: Row) -> tuple[Content, Content, Content]:
    """prompt, chosen, rejected of a TRL row (explicit prompt, or full dialogues split at their shared prefix)."""
    chosen, rejected = row.content("chosen"), row.content("rejected")
    if row.has("prompt"):
        return row.content("prompt"), chosen, rejected
    split = split_transcripts(chosen, rejected)
    if split is None:
        raise row.error("prompt", "missing field, and 'chosen'/'rejected' share no dialogue prefix ending in an "
                                  "assistant turn to take it from")
    return split


def read_pair_source(path: str, fields: Mapping[str, str] | None = None, name: str | None = None) -> PairSource:
    """A generic pair file (TRL or response_a/response_b) → its pairs; any bad row raises InputError."""
    rows = read_rows(path, check_field_map(fields, PAIR_FIELDS))
    seen: dict[str, int] = {}
    source = PairSource(name=name or str(path))
    for row in rows:
        pid = row_id(row, seen)
        if row.has("chosen") or row.has("rejected"):
            prompt, chosen, rejected = trl_triple(row)
            if same_content(chosen, rejected):
                raise row.error("rejected", "identical to 'chosen': a pair needs two different responses")
            margin = row.optional("margin", "numeric")
            pair, a_better = place(pid, prompt, chosen, rejected, {"row": row.number})
            source.pairs.append(LabeledPair(pair, a_better, margin=margin))
        elif row.has("response_a") or row.has("response_b"):
            a, b = row.content("response_a"), row.content("response_b")
            if same_content(a, b):
                raise row.error("response_b", "identical to 'response_a': a pair needs two different responses")
            pair = PreferencePair(id=pid, prompt=row.content("prompt"), response_a=a, response_b=b,
                                  meta={"row": row.number})
            source.pairs.append(LabeledPair(pair, row.optional("label", "label")))
        else:
            raise row.error("chosen", "missing field (need prompt/chosen/rejected or prompt/response_a/response_b)")
    return source
