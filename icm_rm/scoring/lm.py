"""Running a transformers causal LM for scoring: exact attention masks and the True/False log-odds head.

Masks are built here from per-slot positions and validity (see `kv.KVRows`): a query attends to real slots at
positions ≤ its own and, in sliding-window layers, within the window measured in *positions*, not cache indices, so
padding anywhere in a batched cache and sliding-window models past their window stay exact.
"""

from __future__ import annotations

import torch

from ..infra.errors import UserError
from .base import ScorerStats
from .tokens import tokenizer_name, true_false_token_ids

_MASKED_TYPES = ("full_attention", "sliding_attention")


class CausalLMRunner:
    """One causal LM as the scorers use it: forwards over KV rows, and the T/F log-odds of final hidden states."""

    def __init__(self, model, tokenizer, stats: ScorerStats):
        self.model, self.tokenizer, self.stats = model, tokenizer, stats
        self.decoder = model.get_decoder()  # the transformer body: final hidden states (also through a PEFT wrapper)
        self.config = model.config.get_text_config()
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype
        self.max_positions = getattr(self.config, "max_position_embeddings", None)
        self.layer_types = self._layer_types()
        self.sliding_window = getattr(self.config, "sliding_window", None)
        impl = getattr(self.config, "_attn_implementation", "sdpa")
        if impl not in ("sdpa", "eager"):
            raise UserError(f"attention implementation '{impl}' cannot take the explicit masks the KV-cache scorer "
                            "needs; load the model with attn_implementation='sdpa' (or use the naive scorer)")
        t_ids, f_ids = true_false_token_ids(tokenizer)
        head = model.get_output_embeddings()
        vocab = head.weight.shape[0]
        self.t_ids = [i for i in t_ids if i < vocab]
        self.f_ids = [i for i in f_ids if i < vocab]
        if not self.t_ids or not self.f_ids:
            raise UserError(f"the True/False tokens of tokenizer '{tokenizer_name(tokenizer)}' lie outside the "
                            f"model's vocabulary ({vocab} ids)")
        tf = torch.tensor(self.t_ids + self.f_ids, device=self.device)
        self._head_w = head.weight.detach().index_select(0, tf)  # [|T|+|F|, H]
        bias = getattr(head, "bias", None)
        self._head_b = None if bias is None else bias.detach().index_select(0, tf)
        self._softcap = getattr(self.config, "final_logit_softcapping", None)
        self._head_checked = False

    def _layer_types(self) -> list[str]:
        types = getattr(self.config, "layer_types", None)
        if types is None:
            sliding = getattr(self.config, "sliding_window", None) is not None
            types = ["sliding_attention" if sliding else "full_attention"] * self.config.num_hidden_layers
        unknown = sorted(set(types) - set(_MASKED_TYPES))
        if unknown:
            raise UserError(f"model type '{self.config.model_type}' has {', '.join(unknown)} layers, which the "
                            "KV-cache scorer does not support; use the naive scorer")
        return list(types)

    def kv_bytes_per_token(self) -> int:
        """Bytes of K and V one token occupies across all layers (sizes the batched leaf blocks)."""
        c = self.config
        head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
        kv_heads = getattr(c, "num_key_value_heads", None) or c.num_attention_heads
        return c.num_hidden_layers * 2 * kv_heads * head_dim * self._head_w.element_size()

    def tf_log_odds(self, hidden: torch.Tensor) -> torch.Tensor:
        """Final hidden states [R, H] → log-odds [R] (float64), from the head rows of T ∪ F only."""
        if not self._head_checked:
            self._check_head()
        z = hidden.to(self._head_w.dtype) @ self._head_w.T  # [R, |T|+|F|]
        if self._head_b is not None:
            z = z + self._head_b
        if self._softcap is not None:
            z = torch.tanh(z / self._softcap) * self._softcap
        t = z.double()
        n = len(self.t_ids)
        return torch.logsumexp(t[:, :n], dim=-1) - torch.logsumexp(t[:, n:], dim=-1)

    def _check_head(self) -> None:
        """Fail loudly if this head shortcut does not reproduce the model's own logits (e.g. a scaled head)."""
        self._head_checked = True
        ids = torch.tensor([[self.t_ids[0], self.f_ids[0], self.t_ids[0]]], device=self.device)
        with torch.inference_mode():
            full = self.model(input_ids=ids, logits_to_keep=1).logits[0, -1]
            h = self.decoder(input_ids=ids).last_hidden_state[0, -1:]
            ref = torch.logsumexp(full[self.t_ids].double(), 0) - torch.logsumexp(full[self.f_ids].double(), 0)
            got = self.tf_log_odds(h)[0]
        tol = 1e-3 if self.dtype == torch.float32 else 5e-2
        if not torch.isclose(got, ref, atol=tol, rtol=tol):
            raise UserError(f"model type '{self.config.model_type}' has an output head the KV-cache scorer cannot "
                            "reproduce; use the naive scorer")

    def mask(self, q_pos: torch.Tensor, kv_pos: torch.Tensor, kv_valid: torch.Tensor,
             q_branch: torch.Tensor | None = None, kv_branch: torch.Tensor | None = None):
        """Additive attention mask(s) [R, 1, S, C] for queries at q_pos [R, S] over kv slots (pos, valid) [R, C];
        a dict by layer type when the model mixes full and sliding-window layers. With branch ids ([R, S] and
        [R, C]; 0 = shared), a query also sees only shared slots and slots of its own branch."""
        allowed = kv_valid[:, None, :] & (kv_pos[:, None, :] <= q_pos[:, :, None])  # [R, S, C]
        if q_branch is not None:
            allowed &= (kv_branch[:, None, :] == 0) | (kv_branch[:, None, :] == q_branch[:, :, None])
        masks = {}
        for kind in set(self.layer_types):
            ok = allowed
            if kind == "sliding_attention":
                ok = ok & (kv_pos[:, None, :] > q_pos[:, :, None] - self.sliding_window)
            m = torch.zeros(ok.shape, dtype=self.dtype, device=self.device)
            masks[kind] = m.masked_fill_(~ok, torch.finfo(self.dtype).min)[:, None]
        return next(iter(masks.values())) if len(masks) == 1 else masks
