"""Rollout pieces: prompt tokenisation, batched sampling with the KV cache, and response masks at the first EOS."""

from __future__ import annotations

import torch

from icm_rm.data.records import render_messages
from icm_rm.infra.errors import ConfigError

from .data import Prompt


def resolve_prompt_format(tokenizer, prompt_format: str) -> str:
    """The one prompt-format rule of RL and evaluation: `auto` is `chat` when the tokenizer has a chat template (an
    instruct model answers a bare question with its end token), else `raw`; `chat` and `raw` are kept as given."""
    if prompt_format == "auto":
        return "chat" if getattr(tokenizer, "chat_template", None) else "raw"
    return prompt_format


def policy_prompt(tokenizer, prompt: Prompt, prompt_format: str) -> Prompt:
    """A prompt as the policy gets it: chat messages (`chat`) or plain text (`raw`, messages flattened)."""
    if resolve_prompt_format(tokenizer, prompt_format) == "chat":
        return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
    return prompt if isinstance(prompt, str) else render_messages(prompt, capitalize=False) + "\nassistant:"


def prompt_text(tokenizer, prompt: Prompt, prompt_format: str) -> tuple[str, bool]:
    """The text the policy continues, and whether it already carries the special tokens (a chat template writes them)."""
    prompt = policy_prompt(tokenizer, prompt, prompt_format)
    if isinstance(prompt, list):
        if getattr(tokenizer, "chat_template", None):
            return tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False), True
        return render_messages(prompt, capitalize=False) + "\nassistant:", False
    return prompt, False


def check_prompt_format(tokenizer, prompt_format: str, where: str) -> None:
    """`prompt_format: chat` needs a chat template: without one `prompt_text` would silently fall back to plain role
    lines (PPO) and TRL would fail mid-setup (GRPO) — refused before training, naming the tokenizer."""
    if prompt_format == "chat" and not getattr(tokenizer, "chat_template", None):
        raise ConfigError("prompt_format", f"'chat' needs a chat template, and the tokenizer in {where} has none; use "
                                           "prompt_format raw (or auto), or a tokenizer with a chat template")


def tokenize_prompts(tokenizer, prompts: list[Prompt], prompt_format: str, max_length: int) -> list[list[int]]:
    out = []
    for p in prompts:
        text, templated = prompt_text(tokenizer, p, prompt_format)
        ids = tokenizer(text, add_special_tokens=not templated)["input_ids"]
        out.append(ids[-max_length:])      # keep the end: it holds the question and the generation prompt
    return out


def left_pad(seqs: list[list[int]], pad_id: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        if s:
            ids[i, width - len(s):] = torch.tensor(s, dtype=torch.long)
            mask[i, width - len(s):] = 1
    return ids.to(device), mask.to(device)


def eos_ids_of(model, tokenizer) -> list[int]:
    """Every id that ends a response: the tokenizer's EOS and the model's generation_config EOS ids."""
    ids = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if gen_eos is not None:
        ids.update(int(i) for i in (gen_eos if isinstance(gen_eos, (list, tuple)) else [gen_eos]))
    return sorted(ids)


@torch.no_grad()
def sample(policy, query_ids: torch.Tensor, query_mask: torch.Tensor, *, max_new_tokens: int, temperature: float,
           eos_ids: list[int], pad_id: int) -> torch.Tensor:
    """Sampled response ids [B, T ≤ max_new_tokens] (pure sampling at `temperature`: no top-k/top-p, so the
    log-probabilities PPO computes are those of the distribution that was sampled)."""
    from transformers import GenerationConfig

    gen = GenerationConfig(do_sample=True, temperature=temperature, top_k=0, top_p=1.0, max_new_tokens=max_new_tokens,
                           eos_token_id=eos_ids, pad_token_id=pad_id, use_cache=True, bos_token_id=None)
    out = policy.generate(input_ids=query_ids, attention_mask=query_mask, generation_config=gen)
    return out[:, query_ids.shape[1]:]


def response_mask(response_ids: torch.Tensor, eos_ids: list[int], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mask [B, T] up to and including the first EOS, has_eos [B], response_ids with pad after that EOS)."""
    is_eos = torch.isin(response_ids, torch.tensor(eos_ids, device=response_ids.device))
    T = response_ids.shape[1]
    idx = torch.arange(T, device=response_ids.device).expand_as(response_ids)
    first_eos = torch.where(is_eos, idx, torch.full_like(idx, T)).min(dim=1).values     # [B]; T when no EOS
    mask = (idx <= first_eos[:, None]).long()
    has_eos = first_eos < T
    return mask, has_eos, torch.where(mask.bool(), response_ids, torch.full_like(response_ids, pad_id))


def decode_responses(tokenizer, response_ids: torch.Tensor, mask: torch.Tensor) -> list[str]:
    return [tokenizer.decode(ids[m.bool()].tolist(), skip_special_tokens=True) for ids, m in zip(response_ids, mask)]
