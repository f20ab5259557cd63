"""format_for_rm: the one text rule RM training, eval-rm and RL scoring share."""

from __future__ import annotations

import copy

import pytest

from icm_rm.reward.format import encode_for_rm, format_for_rm, response_text

CONV_PROMPT = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def tok():
    from testkit.tiny_models import tiny_tokenizer

    return tiny_tokenizer()


@pytest.fixture(scope="module")
def bos_tok():
    """The tiny tokenizer made Llama-like: it prepends <s> on its own."""
    from tokenizers.processors import TemplateProcessing

    from testkit.tiny_models import tiny_tokenizer

    t = tiny_tokenizer()
    t._tokenizer.post_processor = TemplateProcessing(single="<s> $A", special_tokens=[("<s>", t.bos_token_id)])
    t.chat_template = None
    return t


def test_plain_strings_join_with_separator_and_end_in_eos(tok):
    assert format_for_rm(tok, "Q?", "A") == "Q?\nA</s>"
    assert format_for_rm(tok, "Q: ", "A") == "Q: A</s>"  # prompt already ends in whitespace
    assert format_for_rm(tok, "\n\nHuman: hi\n\nAssistant:", " hello") == "\n\nHuman: hi\n\nAssistant: hello</s>"
    assert format_for_rm(tok, "", "A") == "A</s>"
    assert format_for_rm(tok, "Q?", "A</s>") == "Q?\nA</s>"  # no second EOS


def test_conversational_uses_the_chat_template(tok):
    reply = [{"role": "assistant", "content": "yo"}]
    expected = "User: hi\nAssistant: yo\n"  # the tiny template, no generation prompt, no extra EOS
    assert format_for_rm(tok, CONV_PROMPT, reply) == expected
    assert format_for_rm(tok, CONV_PROMPT, "yo") == expected  # a plain response to a chat prompt
    assert format_for_rm(tok, CONV_PROMPT + reply, []) == expected


def test_conversational_without_template_renders_roles(tok):
    t = copy.deepcopy(tok)
    t.chat_template = None
    assert format_for_rm(t, CONV_PROMPT, "yo") == "User: hi\nAssistant: yo\n</s>"


def test_bos_added_once_and_encode_matches_default_tokenisation(bos_tok):
    text = format_for_rm(bos_tok, "Q?", "A")
    assert text == "<s>Q?\nA</s>"
    ids = encode_for_rm(bos_tok, "Q?", "A")
    assert ids == bos_tok("Q?\nA</s>")["input_ids"]  # exactly what the tokenizer's own call gives
    assert ids.count(bos_tok.bos_token_id) == 1 and ids[-1] == bos_tok.eos_token_id
    assert format_for_rm(bos_tok, CONV_PROMPT, "yo") == "<s>User: hi\nAssistant: yo\n</s>"


def test_response_text_for_lengths():
    assert response_text("abc") == "abc"
    assert response_text([{"role": "user", "content": "q"}, {"role": "assistant", "content": "ans"}]) == "ans"
