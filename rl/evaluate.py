"""`icm-rm eval-policy`: compare trained policies honestly.

1. Win rate: each policy and the reference answer held-out prompts (greedy by default); a judge that was NOT trained
   on (a held-out judge RM dir, or `gold:<builtin task>`, the task's gold checker) scores both; per prompt
   win = 1, tie = 0.5, loss = 0. Reported: win rate ± standard error, wins/ties/losses, response lengths
   (mean/median tokens of each side) and a length-controlled win rate (logistic regression of the outcome on the
   length difference, read at equal length — the idea of AlpacaEval-LC, in its simplest form).
2. Preference accuracy on held-out pairs (`pref_data`): does the policy put more log-probability on `chosen` than on
   `rejected`, relative to the reference model (implicit reward log π − log π_ref, as in DPO), with Wilson CIs.
3. Mean reward of every policy's answers under every RM in `rms` (over-optimisation of the training RM shows as a
   gap between the training RM and the others).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from icm_rm.infra.config import cfg_field, parse_config, save_config
from icm_rm.infra.device import resolve_device
from icm_rm.infra.errors import ConfigError
from icm_rm.infra.io import atomic_write_json, atomic_write_jsonl, atomic_write_text, check_writable, write_run_json
from icm_rm.infra.lm import load_causal_lm, response_token_logprobs
from icm_rm.infra.model_registry import REGISTRY
from icm_rm.infra.models import resolve_model
from icm_rm.infra.runner import run_main
from icm_rm.reward.data import load_pairs, split_spec
from icm_rm.reward.scoring import RewardModel
from icm_rm.reward.stats import wilson_ci

from .degenerate import DEFAULT_THRESHOLD, degenerate_stats
from .eval_report import markdown, plot_win_rates
from .eval_stats import length_controlled_win_rate, outcomes, paired_difference, win_rate
from .judges import make_judge, last_message_text, refuse_judging_with_training_rm
from .ppo.data import load_prompts
from .ppo.rollout import decode_responses, eos_ids_of, left_pad, response_mask, tokenize_prompts


@dataclass
class EvalPolicyConfig:
    """Evaluate policies against a reference: judged win rate, preference accuracy, mean rewards."""

    policies: list[str] = cfg_field(default_factory=list, help="policies as NAME=DIR (or DIR); a registry name works")
    reference: str = cfg_field("smollm2-135m", "the reference policy (the starting policy, or another trained one)")
    prompts: str = cfg_field("builtin:capitals", "held-out prompts: a JSONL/JSON file with `prompt`, or builtin:NAME")
    prompt_split: str = cfg_field("test", "split for builtin:NAME prompts (held out from RL training)")
    prompt_format: str = cfg_field("auto", "auto | raw | chat, the RL trainers' rule (auto: the chat template when the "
                                           "tokenizer has one) — must match how the policies were trained")
    max_prompts: int | None = cfg_field(64, "evaluate on the first N distinct prompts (null = all)", ge=1)
    max_new_tokens: int = cfg_field(48, "answer length cap", ge=1)
    temperature: float = cfg_field(0.0, "0 = greedy; > 0 samples (seeded)", ge=0)
    batch_size: int = cfg_field(16, "prompts per generation batch", ge=1)
    judge: str | None = cfg_field(None, "gold:<builtin task> or a judge RM dir never trained on (null = "
                                        "gold checker of builtin prompts)")
    tie_margin: float = cfg_field(0.0, "RM judge: |reward difference| ≤ this counts as a tie", ge=0)
    head_to_head: bool = cfg_field(True, "also compare every pair of policies with each other")
    rms: list[str] = cfg_field(default_factory=list, help="RMs (NAME=DIR) to report each policy's mean reward under")
    pref_data: list[str] = cfg_field(default_factory=list, help="held-out preference files FILE[:format] for "
                                                               "implicit-reward preference accuracy")
    pref_limit: int | None = cfg_field(200, "pairs per preference file (null = all)", ge=1)
    degenerate_threshold: float = cfg_field(DEFAULT_THRESHOLD, "flag a policy when more than this fraction of its "
                                                               "answers is empty or cut at max_new_tokens", gt=0, le=1)
    seed: int = cfg_field(0, "sampling seed", ge=0)
    device: str = cfg_field("auto", "cpu, cuda or auto")
    output_dir: str = cfg_field("runs/eval_policy", "where samples.jsonl, eval_policy.{json,md} and PNGs go")

    def __post_init__(self):
        resolve_device(self.device)
        if self.prompt_format not in ("auto", "raw", "chat"):
            raise ConfigError("prompt_format", f"must be auto, raw or chat, got '{self.prompt_format}'")
        if self.max_new_tokens < 1 or self.batch_size < 1:
            raise ConfigError("max_new_tokens", "max_new_tokens and batch_size must be ≥ 1")
        if self.temperature < 0:
            raise ConfigError("temperature", f"must be ≥ 0, got {self.temperature}")
        if not 0 < self.degenerate_threshold <= 1:
            raise ConfigError("degenerate_threshold", f"must lie in (0, 1], got {self.degenerate_threshold}")


# ----------------------------------------------------------------------------------------------- models

def parse_named(items: Sequence[str], key: str = "policies") -> list[tuple[str, str]]:
    """NAME=PATH (or PATH, named by its parent dirs) → (name, path); errors name the config `key` they came from."""
    out = []
    for it in items:
        if "=" in it:
            name, path = it.split("=", 1)
        else:
            p = Path(it)
            name = "/".join(p.parts[-3:-1]) if p.name in ("policy", "model") and len(p.parts) > 2 else p.name or it
        out.append((name, path if "=" in it else it))
    names = [n for n, _ in out]
    if len(set(names)) != len(names):
        raise ConfigError(key, f"names must be unique, got {names}; use NAME=DIR")
    return out


def load_policy(name_or_path: str, device: str):
    model, tok = load_causal_lm(name_or_path, dtype="float32", device=device)
    tok.padding_side = "left"
    return model, tok


@torch.inference_mode()
def generate(model, tok, prompts: list, cfg: EvalPolicyConfig, desc: str) -> tuple[list[str], list[int], list[bool]]:
    """Answers, their token counts (up to and including the first EOS), and whether each was cut at max_new_tokens."""
    from transformers import GenerationConfig

    device = next(model.parameters()).device
    eos = eos_ids_of(model, tok)
    pad = tok.pad_token_id if tok.pad_token_id is not None else eos[0]
    texts, lengths, cut = [], [], []
    torch.manual_seed(cfg.seed)
    for s in tqdm(range(0, len(prompts), cfg.batch_size), desc=desc, leave=False):
        ids = tokenize_prompts(tok, prompts[s:s + cfg.batch_size], cfg.prompt_format, 1024)
        q, m = left_pad(ids, pad, device)
        gen = GenerationConfig(do_sample=cfg.temperature > 0, temperature=cfg.temperature or None, top_k=None,
                               top_p=None, max_new_tokens=cfg.max_new_tokens, eos_token_id=eos, pad_token_id=pad)
        out = model.generate(input_ids=q, attention_mask=m, generation_config=gen)[:, q.shape[1]:]
        mask, has_eos, out = response_mask(out, eos, pad)
        texts += decode_responses(tok, out, mask)
        lengths += mask.sum(dim=1).tolist()
        cut += (~has_eos).tolist()
    return texts, lengths, cut


@torch.inference_mode()
def response_logprobs(model, tok, prompts: list, responses: list, prompt_format: str,
                      batch_size: int = 8) -> np.ndarray:
    """Σ log π(response tokens | prompt) per example (response tokenised on its own, then EOS)."""
    q_ids = tokenize_prompts(tok, prompts, prompt_format, 1024)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    out = np.empty(len(prompts))
    for s in range(0, len(prompts), batch_size):
        rows, starts = [], []
        for q, r in zip(q_ids[s:s + batch_size], responses[s:s + batch_size]):
            r_ids = tok(last_message_text(r), add_special_tokens=False).input_ids + ([tok.eos_token_id] if tok.eos_token_id
                                                                          is not None else [])
            rows.append(q + r_ids)
            starts.append(len(q))
        for i, logp in enumerate(response_token_logprobs(model, rows, starts, pad)):
            out[s + i] = float(logp.sum())
    return out


# ----------------------------------------------------------------------------------------------- the stage

def run_eval_policy(cfg: EvalPolicyConfig) -> dict:
    if not cfg.policies:
        raise ConfigError("policies", "give at least one policy (NAME=DIR)")
    named = [("reference", cfg.reference)] + parse_named(cfg.policies)
    _check_model_dirs(named)
    device = resolve_device(cfg.device)
    out = Path(cfg.output_dir)
    prompts = load_prompts(cfg.prompts, cfg.prompt_split, cfg.max_prompts)
    refuse_judging_with_training_rm(cfg.judge, named)
    judge, judge_desc = make_judge(cfg.judge, cfg.prompts, device)
    check_writable(out)
    save_config(cfg, out / "config.yaml")

    answers: dict[str, list[str]] = {}
    lengths: dict[str, list[int]] = {}
    degenerate: dict[str, dict] = {}
    scores: dict[str, np.ndarray] = {}
    pref: dict[str, dict] = {}
    pref_sets = _load_pref_sets(cfg)
    ref_logps: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, path in named:
        model, tok = load_policy(path, device)
        answers[name], lengths[name], cut = generate(model, tok, prompts, cfg, f"generate {name}")
        degenerate[name] = degenerate_stats(answers[name], cut, cfg.degenerate_threshold)
        scores[name] = np.asarray(judge(prompts, answers[name]), dtype=float)
        for set_name, examples in pref_sets.items():
            ps = [e.prompt for e in examples]
            lc = response_logprobs(model, tok, ps, [e.chosen for e in examples], cfg.prompt_format)
            lr = response_logprobs(model, tok, ps, [e.rejected for e in examples], cfg.prompt_format)
            if name == "reference":
                ref_logps[set_name] = (lc, lr)
            pref.setdefault(name, {})[set_name] = _pref_accuracy(lc, lr, ref_logps.get(set_name), name)
        del model

    matchups = [(n, "reference") for n, _ in named[1:]]
    if cfg.head_to_head:
        pol = [n for n, _ in named[1:]]
        matchups += [(pol[i], pol[j]) for i in range(len(pol)) for j in range(i + 1, len(pol))]
    results = []
    for a, b in matchups:
        o = outcomes(scores[a], scores[b], cfg.tie_margin)
        r = {"policy": a, "versus": b, **win_rate(o),
             "lc_win_rate": length_controlled_win_rate(o, lengths[a], lengths[b]),
             "len_mean": [float(np.mean(lengths[a])), float(np.mean(lengths[b]))],
             "len_median": [float(np.median(lengths[a])), float(np.median(lengths[b]))],
             "score_diff": paired_difference(scores[a], scores[b], seed=cfg.seed)}
        results.append(r)

    rm_means = _rm_means(cfg, prompts, answers, device)
    doc = {"judge": judge_desc, "n_prompts": len(prompts), "prompts": cfg.prompts, "split": cfg.prompt_split,
           "policies": dict(named), "judge_score_mean": {n: float(np.mean(s)) for n, s in scores.items()},
           "degenerate": degenerate, "win_rates": results, "preference_accuracy": pref, "rm_mean_reward": rm_means}
    rows = [{"prompt": p, **{f"{n}": answers[n][i] for n, _ in named},
             **{f"{n}_score": float(scores[n][i]) for n, _ in named}} for i, p in enumerate(prompts)]
    atomic_write_jsonl(out / "samples.jsonl", rows)
    atomic_write_json(out / "eval_policy.json", doc)
    atomic_write_text(out / "eval_policy.md", markdown(doc))
    plot_win_rates(doc, out / "win_rates.png")
    write_run_json(out, cfg, seed=cfg.seed)
    return doc


def all_empty(doc: dict) -> list[str]:
    """Policies (the reference included) whose every answer was empty: nothing was judged."""
    return [n for n, d in doc.get("degenerate", {}).items() if d.get("all_empty")]


def _check_model_dirs(named: list[tuple[str, str]]) -> None:
    """A missing policy dir fails before any model is loaded or any answer generated (registry names are fetched
    on first use, later)."""
    for _, path in named:
        if path not in REGISTRY:
            resolve_model(path)


def _load_pref_sets(cfg: EvalPolicyConfig) -> dict[str, list]:
    sets = {}
    for spec in cfg.pref_data:
        path = Path(split_spec(spec)[0])
        name = path.name.split(".")[0] if path.name.split(".")[0] not in ("test", "train") else \
            f"{path.parent.name}/{path.name.split('.')[0]}"
        sets[name] = load_pairs(spec, limit=cfg.pref_limit).examples
    return sets


def _pref_accuracy(lc: np.ndarray, lr: np.ndarray, ref: tuple[np.ndarray, np.ndarray] | None, name: str) -> dict:
    n = len(lc)
    d = {"n": n}
    hits = int(np.sum(lc > lr))
    d["logp_accuracy"], d["logp_ci"] = hits / n, wilson_ci(hits, n)
    if ref is not None and name != "reference":
        imp = (lc - ref[0]) - (lr - ref[1])  # implicit reward margin: chosen minus rejected
        hits = int(np.sum(imp > 0))
        d["implicit_accuracy"], d["implicit_ci"] = hits / n, wilson_ci(hits, n)
        d["implicit_margin_mean"] = float(np.mean(imp))
    return d


def score_distinct(score: Callable[[list, list], Sequence[float]], prompts: list,
                   keys: Iterable[tuple[int, str]]) -> dict[tuple[int, str], float]:
    """{(prompt index, answer): score(prompt, answer)}, each distinct pair scored once: small policies repeat answers
    (across samples, and the policies often give the reference's answer)."""
    distinct = list(dict.fromkeys(keys))
    return dict(zip(distinct, score([prompts[i] for i, _ in distinct], [a for _, a in distinct])))


def _rm_means(cfg: EvalPolicyConfig, prompts: list, answers: dict[str, list[str]], device: str) -> dict:
    out: dict[str, dict] = {}
    keys = [(i, a) for ans in answers.values() for i, a in enumerate(ans)]
    for rm_name, path in parse_named(cfg.rms, "rms") if cfg.rms else []:
        rm = RewardModel.from_pretrained(path, device=device)
        scored = score_distinct(rm.score, prompts, keys)
        for pol, ans in answers.items():
            r = np.array([scored[(i, a)] for i, a in enumerate(ans)])
            if rm.reward_mean is not None and rm.reward_std:
                r = rm.normalize(r)
            out.setdefault(pol, {})[rm_name] = {"mean": float(np.mean(r)),
                                                "se": float(np.std(r, ddof=1) / math.sqrt(len(r))) if len(r) > 1
                                                else float("nan")}
        del rm
    return out


def main(argv: list[str] | None = None) -> int:
    cfg, _ = parse_config(EvalPolicyConfig, argv, prog="icm-rm eval-policy")
    doc = run_eval_policy(cfg)
    print(markdown(doc), file=sys.stderr)
    empty = all_empty(doc)
    if empty:
        print(f"icm-rm: error: every answer of {', '.join(empty)} is empty; nothing was judged (check prompt_format: "
              "an instruct model answers a raw prompt with its end token)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, None))
