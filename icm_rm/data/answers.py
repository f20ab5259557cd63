"""Content-derived consistency keys: normalised answer text and final answers extracted from math solutions.

Keys come from what a claim *says*, never from its label (docs/icm.md): two claims get the same key exactly when
their normalised answers are equal, so "same answer ⇒ same verdict" and "different answers cannot both be right"
can be checked without any gold.
"""

from __future__ import annotations

import re
import unicodedata

NO_ANSWER = "<no answer>"

_NUMBER = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|-?\d+(?:\.\d+)?|-?\.\d+")
_ANSWER_IS = re.compile(r"answer is\s*:?", re.IGNORECASE)
_GSM8K_FINAL = re.compile(r"^####\s*(.*?)\s*$", re.MULTILINE)
_A_LINE = re.compile(r"^A:\s*(.*?)\s*$", re.MULTILINE)


def normalize_text(text: str) -> str:
    """Case-, punctuation- and whitespace-insensitive form of an answer (NFKC, casefolded)."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = re.sub(r"[^\w\s]", " ", text)
    return " ".join(text.split())


def canonical_number(text: str) -> str | None:
    """'$1,200.50' → '1200.5', '6.00' → '6', '-3' → '-3'; None when `text` is not a single number."""
    core = re.sub(r"[\s$€£%]", "", unicodedata.normalize("NFKC", text)).rstrip(".")
    if not re.fullmatch(_NUMBER.pattern, core):
        return None
    value = core.replace(",", "")
    if "." in value:
        value = value.rstrip("0").rstrip(".")
    if value.startswith((".", "-.")):
        value = value.replace(".", "0.", 1)
    if value in ("-0", "", "-"):
        value = "0"
    return value


def normalize_answer(answer: str) -> str:
    """Canonical key of a final answer: the number it states (after any '='), else its normalised text."""
    answer = answer.strip().rstrip(".").strip()
    if not answer:
        return NO_ANSWER
    tail = answer.rsplit("=", 1)[-1]
    for candidate in (answer, tail):
        number = canonical_number(candidate)
        if number is not None:
            return number
    numbers = _NUMBER.findall(tail)
    if len(numbers) == 1:  # "Seth is 18 years old" → 18
        return canonical_number(numbers[0]) or numbers[0]
    return normalize_text(answer) or NO_ANSWER


def answer_after_marker(solution: str) -> str | None:
    """The raw text after the last 'The answer is' in a chain of thought (ICM GSM8K style), up to its line end."""
    matches = list(_ANSWER_IS.finditer(solution))
    if not matches:
        return None
    rest = solution[matches[-1].end():].split("\n", 1)[0].strip()
    return rest.rstrip(".").strip()


def gsm8k_reference_answer(solution: str) -> str | None:
    """The final answer of a GSM8K reference solution (its '#### x' line)."""
    found = _GSM8K_FINAL.findall(solution)
    return found[-1] if found else None


def model_solution_answer(solution: str) -> str | None:
    """The final answer of an OpenAI GSM8K model solution (its last 'A: x' line)."""
    found = _A_LINE.findall(solution)
    return found[-1] if found else None

