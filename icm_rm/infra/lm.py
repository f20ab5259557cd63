"""The one causal-LM loader (labeler, probe, policies, benchmarks) and right-padding of token lists."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .device import resolve_device
from .model_dir import loading
from .model_registry import check_dtype, default_dtype
from .models import resolve_model


def load_causal_lm(name_or_path: str | Path, dtype: str | None = None, device: str | None = "cpu", *,
                   set_pad_token: bool = True, attn_implementation: str | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) in eval mode on `device` ("auto": CUDA when available) for a registry name (fetched on
    first use), a local dir or, when online, a hub id. dtype None: the model's default (`models list`; bfloat16 for
    the 1.5B Qwen, float32 for the others and for local dirs).

    set_pad_token: a tokenizer without a pad token gets EOS (the label stage, policies and trainers pad batches);
    the scorers' `from_pretrained` keep the tokenizer as saved. attn_implementation: None = transformers' default;
    the KV-cache scorer asks for "sdpa" (it passes explicit masks)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer  # heavy: loaded only when a model is

    dtype = check_dtype(dtype or default_dtype(name_or_path))
    torch_dtype = getattr(torch, dtype)
    device = resolve_device(device)
    path = resolve_model(str(name_or_path), dtype=dtype)
    with loading(path, "causal LM"):
        tokenizer = AutoTokenizer.from_pretrained(path)
        kw = {} if attn_implementation is None else {"attn_implementation": attn_implementation}
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype, **kw)
    if set_pad_token and tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.to(device).eval(), tokenizer


def right_pad(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token lists → (input_ids [B, T], attention_mask [B, T]), right-padded with `pad_id`."""
    width = max(map(len, seqs))
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for r, s in enumerate(seqs):
        ids[r, :len(s)] = torch.tensor(list(s), dtype=torch.long)
        mask[r, :len(s)] = 1
    return ids, mask


def response_token_logprobs(model, rows: Sequence[Sequence[int]], starts: Sequence[int],
                            pad_id: int) -> list[torch.Tensor]:
    """Per row, log π(row[t] | row[:t]) for t from starts[i] (≥ 1) to its end, from one right-padded forward. The LM
    head runs only on the positions that predict those tokens (`logits_to_keep`), not on the prompts before them."""
    device = next(model.parameters()).device
    x, mask = right_pad(rows, pad_id)
    first = max(min(starts) - 1, 0)  # the first position whose logits predict a response token
    logits = model(input_ids=x.to(device), attention_mask=mask.to(device),
                   logits_to_keep=x.shape[1] - first).logits.float()
    logp = torch.log_softmax(logits[:, :-1], -1).gather(-1, x[:, first + 1:].to(device)[..., None])[..., 0]
    return [logp[i, st - 1 - first:len(row) - 1 - first] for i, (row, st) in enumerate(zip(rows, starts))]
