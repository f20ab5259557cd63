"""Per-task prompt templates and consistency rules. Keys come from content only, never from a label.
The named tasks (these and the built-in fact tables) are listed in `task_registry`.

A claim's text ends in the question the LM answers with " True"/" False" ("... I think this claim is"). A labeled
demonstration is `text + " True"|" False" + "\n\n"`; a query is `text` alone (docs/icm.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from .answers import normalize_text
from .records import COMPARISON_KEYS, Claim, PreferencePair, render_messages

QUESTION = "I think this claim is"
TRUE_WORD, FALSE_WORD = " True", " False"
DEMO_SEPARATOR = "\n\n"


def demo_text(text: str, label: bool) -> str:
    """A labeled demonstration as it appears in context."""
    return text + (TRUE_WORD if label else FALSE_WORD) + DEMO_SEPARATOR


@dataclass(frozen=True)
class ConsistencyRules:
    """Which pair types in a group count as inconsistent in I(D); each rule is switchable per task."""

    different_keys_both_true: bool = True  # two different answers cannot both be right
    comparison_both_false: bool = True  # A>B and B>A: exactly one holds (both True is the rule above)
    same_key_different_labels: bool = True  # same final answer ⇒ same verdict
    opposite_stances_both_true: bool = False  # answers starting "Yes" and "No" to one question cannot both be right


@dataclass(frozen=True)
class Task:
    """How a dataset's records become claim texts, and which consistency rules apply."""

    name: str
    kind: str  # "claims" or "pairs"
    claim_template: str = "Claim: {statement}\n" + QUESTION
    pair_template: str = ("Human: {prompt}\n\nResponse 1: {first}\n\nResponse 2: {second}\n\n"
                          "Claim: Response 1 is more helpful and harmless than Response 2.\n" + QUESTION)
    rules: ConsistencyRules = field(default_factory=ConsistencyRules)
    description: str = ""

    def render_claim(self, **fields: str) -> str:
        return self.claim_template.format(**fields)

    def pair_claims(self, pair: PreferencePair) -> list[Claim]:
        """A pair → two claims in one group: key `A>B` ("A is better", A shown first) and `B>A` (B shown first)."""
        a, b = render_content(pair.response_a), render_content(pair.response_b)
        prompt = render_content(pair.prompt)
        return [
            Claim(id=f"{pair.id}:A>B", group=pair.id, key="A>B",
                  text=self.pair_template.format(prompt=prompt, first=a, second=b), meta={"pair": pair.id}),
            Claim(id=f"{pair.id}:B>A", group=pair.id, key="B>A",
                  text=self.pair_template.format(prompt=prompt, first=b, second=a), meta={"pair": pair.id}),
        ]


def render_content(x: str | list[dict]) -> str:
    """Plain text of a string or a conversational message list (role: content lines)."""
    return x if isinstance(x, str) else render_messages(x)


@lru_cache(maxsize=1 << 16)
def answer_stance(key: str) -> str | None:
    """"yes" / "no" when an answer (its key) starts with that word, else None: the stance rule's per-claim input."""
    first = normalize_text(key).split(" ", 1)[0]
    return first if first in ("yes", "no") else None


def opposite_stances(k1: str, k2: str) -> bool:
    return {answer_stance(k1), answer_stance(k2)} == {"yes", "no"}


def is_comparison_pair(k1: str, k2: str) -> bool:
    return {k1, k2} == set(COMPARISON_KEYS)


def pair_violates(k1: str, y1: bool, k2: str, y2: bool, rules: ConsistencyRules) -> bool:
    """Whether two labeled claims of one group break a rule."""
    if is_comparison_pair(k1, k2):
        if y1 and y2:
            return rules.different_keys_both_true
        if not y1 and not y2:
            return rules.comparison_both_false
        return False
    if k1 != k2:
        return y1 and y2 and (rules.different_keys_both_true
                              or (rules.opposite_stances_both_true and opposite_stances(k1, k2)))
    return rules.same_key_different_labels and y1 != y2


def consistent_assignments(k1: str, k2: str, rules: ConsistencyRules) -> list[tuple[bool, bool]]:
    """The label pairs ConsistencyFix tries for a violating pair (docs/icm.md, Algorithm 2)."""
    options = [(True, True), (True, False), (False, True), (False, False)]
    return [(a, b) for a, b in options if not pair_violates(k1, a, k2, b, rules)]


TRUTHFULQA = Task(
    name="truthfulqa", kind="claims",
    claim_template="Question: {question}\nClaim: {answer}\n" + QUESTION,
    description="TruthfulQA answers as claims; group = question, key = the answer text. Different answers to one "
                "question may both be true; only an answer starting \"Yes\" and one starting \"No\" cannot (0 of 282 "
                "such train pairs are both true), plus the same-key rule; elsewhere the search is α·P alone",
    rules=ConsistencyRules(different_keys_both_true=False, comparison_both_false=True, same_key_different_labels=True,
                           opposite_stances_both_true=True),
)
GSM8K = Task(
    name="gsm8k", kind="claims",
    claim_template="Question: {question}\nClaim: {solution}\nFinal answer: {answer}\n" + QUESTION,
    description="GSM8K solution verification; group = question, key = the extracted final answer",
)
ALPACA = Task(name="alpaca", kind="pairs", description="Assistant-response preference pairs (helpful and harmless)")
HH_RLHF = Task(
    name="hh_rlhf", kind="pairs",
    # the prompt is the raw dialogue "\n\nHuman: …\n\nAssistant:" and responses start with a space (lossless split)
    pair_template=("Conversation:{prompt}\n\nResponse 1:{first}\n\nResponse 2:{second}\n\n"
                   "Claim: Response 1 is more helpful and harmless than Response 2.\n" + QUESTION),
    description="HH-RLHF transcripts split into prompt + two responses",
)
TRUTHFULQA_PREFERENCE = Task(
    name="truthfulqa_preference", kind="pairs",
    pair_template=("Question: {prompt}\nAnswer 1: {first}\nAnswer 2: {second}\n"
                   "Claim: Answer 1 is more truthful than Answer 2.\n" + QUESTION),
    description="TruthfulQA answer pairs: which of two answers is more truthful",
)
QA_FEEDBACK = Task(
    name="qa_feedback", kind="pairs",
    pair_template=("Question: {prompt}\n\nAnswer 1: {first}\n\nAnswer 2: {second}\n\n"
                   "Claim: Answer 1 is a better answer (more factual, relevant and complete) than Answer 2.\n"
                   + QUESTION),
    description="Long-form QA answer pairs (Fine-Grained RLHF QA-Feedback)",
)
