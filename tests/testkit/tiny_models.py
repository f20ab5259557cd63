"""Tiny random-weight models and a tokenizer built in code, for fast tests and benchmarks (no hub, no files)."""

from __future__ import annotations

import functools
from pathlib import Path

_CORPUS = [
    "Claim: The capital of France is Paris.\nI think this claim is True\n\n",
    "Claim: The capital of Spain is Rome.\nI think this claim is False\n\n",
    "Human: Which is larger, 3 or 5?\n\nResponse 1: 5 is larger.\n\nResponse 2: 3 is larger.\n\n"
    "Claim: Response 1 is more helpful and harmless than Response 2.\nI think this claim is True",
    "Question: What is 2 + 3?\nClaim: 2 + 3 = 5. Final answer: 5\nI think this claim is true false yes no",
    "The quick brown fox jumps over the lazy dog. the a an of to in is was for on with as by at from that this",
    "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 .,;:!?'\"()[]{}<>+-*/=_\n\t",
    "User: Assistant: System: good bad better worse helpful harmless answer question response prompt",
]

CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] | capitalize }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)


@functools.lru_cache(maxsize=4)
def _tokenizer_json(vocab_size: int) -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_CORPUS * 20, trainer=trainer)
    tok.add_tokens([" True", " False"])
    return tok.to_str()


def tiny_tokenizer(vocab_size: int = 384):
    """A byte-level BPE tokenizer trained in code; has " True"/" False" tokens, <s>, </s>, <pad> and a chat template."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(_tokenizer_json(vocab_size)),
                                  bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    tok.chat_template = CHAT_TEMPLATE
    tok.model_max_length = 4096
    return tok


def tiny_llama(tokenizer=None, *, hidden_size: int = 32, num_layers: int = 2, num_heads: int = 4,
               num_kv_heads: int = 2, seed: int = 0, max_position_embeddings: int = 4096,
               tie_word_embeddings: bool = False):
    """A random-weight LlamaForCausalLM sized for unit tests (fp32, CPU)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = tokenizer or tiny_tokenizer()
    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=hidden_size * 2,
                      num_hidden_layers=num_layers, num_attention_heads=num_heads, num_key_value_heads=num_kv_heads,
                      max_position_embeddings=max_position_embeddings, bos_token_id=tokenizer.bos_token_id,
                      eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                      tie_word_embeddings=tie_word_embeddings)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg)
    # Larger init than the default 0.02 so random models give non-trivial, label-dependent log-odds.
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.2)
    return model.eval()


def save_tiny_model(path: str | Path, **kw) -> Path:
    """Save a tiny causal LM + tokenizer as a normal HF directory (what the CLI and trainers load by path)."""
    path = Path(path)
    tok = tiny_tokenizer()
    model = tiny_llama(tok, **kw)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path
