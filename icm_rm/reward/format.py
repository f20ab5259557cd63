"""How a (prompt, response) pair becomes the one text a reward model scores — shared by RM training, `eval-rm` and
RL scoring (`rl/rewards.py`), so a reward means the same thing everywhere.

The rule, in full:
  * conversational input (prompt or response is a list of `{"role", "content"}` messages) and a tokenizer with a chat
    template → the template applied to `prompt messages + assistant response` (no generation prompt);
  * conversational input without a chat template → one `Role: content` line per message;
  * plain strings → `prompt + response`, with `SEPARATOR` between them unless the prompt already ends (or the
    response already starts) with whitespace, then the tokenizer's EOS (as TRL's RewardTrainer does);
  * the tokenizer's BOS is prepended when the tokenizer would add one itself and the text lacks it.
The text therefore spells out every special token: tokenise it with `add_special_tokens=False` (`encode_for_rm`).
"""

from __future__ import annotations

from typing import Any

from ..data.records import Content, render_messages

SEPARATOR = "\n"


def is_conversational(x: Any) -> bool:
    """A list of role/content message dicts (TRL's conversational format)."""
    return isinstance(x, list) and all(isinstance(m, dict) and "role" in m and "content" in m for m in x)


def as_messages(x: Content, role: str) -> list[dict]:
    """Messages as they are, or a plain string wrapped as one message of `role`."""
    return list(x) if is_conversational(x) else [{"role": role, "content": str(x)}]


def format_for_rm(tokenizer, prompt: Content, response: Content) -> str:
    """The text a reward model scores for `response` to `prompt` (see the module docstring for the rule)."""
    if is_conversational(prompt) or is_conversational(response):
        messages = as_messages(prompt, "user") + as_messages(response, "assistant")
        if getattr(tokenizer, "chat_template", None):
            text = tokenizer.apply_chat_template(messages, tokenize=False)
        else:
            text = render_messages(messages) + "\n" + (tokenizer.eos_token or "")
    else:
        prompt, response = str(prompt), str(response)
        sep = "" if not prompt or prompt[-1:].isspace() or response[:1].isspace() else SEPARATOR
        text = prompt + sep + response
        eos = tokenizer.eos_token or ""
        if eos and not text.endswith(eos):
            text += eos
    bos = getattr(tokenizer, "bos_token", None)
    if bos and _adds_bos(tokenizer) and not text.startswith(bos):
        text = bos + text
    return text


def encode_for_rm(tokenizer, prompt: Content, response: Content) -> list[int]:
    """Token ids of `format_for_rm(...)`: the text already holds its special tokens, so none are added."""
    return tokenizer(format_for_rm(tokenizer, prompt, response), add_special_tokens=False)["input_ids"]


def _adds_bos(tokenizer) -> bool:
    """Whether `tokenizer(text)` prepends BOS by itself (Llama-style) — then the RM was trained with it."""
    cached = getattr(tokenizer, "_icm_rm_adds_bos", None)
    if cached is None:
        bos_id = getattr(tokenizer, "bos_token_id", None)
        ids = tokenizer("a")["input_ids"]
        cached = bos_id is not None and len(ids) > 0 and ids[0] == bos_id
        try:
            tokenizer._icm_rm_adds_bos = cached
        except AttributeError:  # pragma: no cover - exotic tokenizer classes
            pass
    return cached


def response_text(response: Content) -> str:
    """A response's visible text (the assistant messages' contents), for length statistics."""
    if is_conversational(response):
        return "".join(str(m["content"]) for m in response if m.get("role") == "assistant") or \
            "".join(str(m["content"]) for m in response)
    return str(response)
