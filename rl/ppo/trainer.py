"""`PPOTrainer`: one PPO step is rollout() → score() → compute_advantages() → update(), on accelerate (DDP or
DeepSpeed ZeRO-2/3 from the launcher's config), with checkpoints that resume onto the same curve."""

from __future__ import annotations

import dataclasses
import math
import os
import time
from contextlib import contextmanager
from pathlib import Path

import torch

from icm_rm.infra.config import save_config
from icm_rm.infra.errors import ConfigError, UserError
from icm_rm.infra.io import is_complete, mark_complete, write_run_json
from icm_rm.infra.model_dir import loading
from rl.degenerate import degenerate_stats, rollout_metrics
from rl.logging import RunLogger
from rl.rewards import build_reward_source, postprocess_scores, source_metrics

from .advantages import gae, masked_mean, masked_moments, moments_to_mean_var, whiten
from .checkpoint import TrainState, latest_checkpoint, load_checkpoint, save_checkpoint, save_trainable_only
from .config import BatchPlan, PPOConfig
from .data import PromptStream, load_prompts
from .experience import Experience
from .kl import AdaptiveKLController, FixedKLController, kl_estimate
from .losses import entropy_from_logits, policy_loss, token_logprobs, value_loss
from .models import (PolicyAndValue, export_policy, load_policy, load_reference, load_value_model, position_ids_from,
                     prepare_reference, unwrap_for_generation)
from .rollout import (check_prompt_format, decode_responses, eos_ids_of, left_pad, response_mask, sample,
                      tokenize_prompts)


def make_accelerator(cfg: PPOConfig):
    """An Accelerator whose process group is gloo on CPU-only machines (else accelerate silently runs world size 1)."""
    from accelerate import Accelerator
    from accelerate.utils import InitProcessGroupKwargs

    handlers = []
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed and not torch.cuda.is_available():
        handlers.append(InitProcessGroupKwargs(backend="gloo"))
    return Accelerator(mixed_precision=cfg.mixed_precision, kwargs_handlers=handlers)


def lr_factor(update: int, total: int, warmup: int, schedule: str) -> float:
    """Multiplier of the base learning rate at optimizer step `update` (0-based)."""
    if warmup and update < warmup:
        return (update + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (update - warmup) / max(1, total - warmup))
    if schedule == "linear":
        return 1.0 - progress
    return 0.5 * (1.0 + math.cos(math.pi * progress))


class Timer:
    def __init__(self):
        self.times: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        t0 = time.perf_counter()
        yield
        self.times[f"timing/{name}"] = self.times.get(f"timing/{name}", 0.0) + time.perf_counter() - t0


class PPOTrainer:
    def __init__(self, cfg: PPOConfig, reward_source=None, accelerator=None):
        from accelerate.utils import set_seed
        from transformers import AutoTokenizer

        self.cfg = cfg = cfg.with_resolved_models()
        self.acc = acc = accelerator or make_accelerator(cfg)
        self.plan = BatchPlan.from_config(cfg, acc.num_processes)
        acc.gradient_accumulation_steps = self.plan.grad_accum
        self.is_deepspeed = acc.state.deepspeed_plugin is not None
        set_seed(cfg.seed)                      # same initial weights (value head) on every process

        with loading(cfg.tokenizer or cfg.model, "tokenizer"):
            self.tokenizer = AutoTokenizer.from_pretrained(cfg.tokenizer or cfg.model)
        check_prompt_format(self.tokenizer, cfg.prompt_format, cfg.tokenizer or cfg.model)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.prompts = load_prompts(cfg.prompts, cfg.prompt_split, cfg.max_prompts)

        spec = cfg.reward if cfg.reward is not None else cfg.reward_model
        self.reward = reward_source or build_reward_source(spec, normalize=cfg.normalize_reward, device=acc.device,
                                                           batch_size=cfg.reward_batch_size)
        reward_path = getattr(self.reward, "path", None)

        policy = load_policy(cfg)
        positions = getattr(policy.config.get_text_config(), "max_position_embeddings", None)
        if positions and cfg.max_prompt_length + cfg.max_new_tokens > positions:  # prompts are cut, this can't be
            raise ConfigError("max_prompt_length", f"max_prompt_length ({cfg.max_prompt_length}) + max_new_tokens "
                                                   f"({cfg.max_new_tokens}) exceeds the policy's {positions} positions; "
                                                   "lower one of them")
        self.eos_ids = eos_ids_of(policy, self.tokenizer)
        critic = load_value_model(cfg, self.tokenizer, str(reward_path) if reward_path else None, policy)
        model = PolicyAndValue(policy, critic)
        self.policy_params = [p for p in policy.parameters() if p.requires_grad]
        value_params = [p for p in critic.parameters() if p.requires_grad]
        self.base_lrs = [cfg.learning_rate, cfg.value_learning_rate or cfg.learning_rate]
        optimizer = torch.optim.AdamW([{"params": self.policy_params, "lr": self.base_lrs[0]},
                                       {"params": value_params, "lr": self.base_lrs[1]}],
                                      weight_decay=cfg.weight_decay)
        if self.is_deepspeed:
            self._fill_deepspeed_config()
        self.model, self.optimizer = acc.prepare(model, optimizer)
        if not self.is_deepspeed:
            save_trainable_only(acc)

        self.ref = None
        if not cfg.lora:    # with LoRA the reference is the policy with its adapter disabled
            self.ref = prepare_reference(load_reference(cfg, self.tokenizer), acc)

        self.rollout_flags: list[str] = []      # the latest step's degenerate-rollout flags
        self.stream = PromptStream(self.prompts, cfg.seed)
        self.kl_ctl = (AdaptiveKLController(cfg.kl_coef, cfg.kl_target, cfg.kl_horizon) if cfg.adaptive_kl
                       else FixedKLController(cfg.kl_coef))
        self.state = TrainState(self.stream, self.kl_ctl)  # saved as JSON beside accelerate's state, not pickled
        set_seed(cfg.seed, device_specific=True)  # from here on each process samples differently

    def _fill_deepspeed_config(self) -> None:
        """No dataloader goes through `prepare`, so the sizes DeepSpeed calls "auto" are filled from the BatchPlan."""
        ds = self.acc.state.deepspeed_plugin.deepspeed_config
        fills = {"train_micro_batch_size_per_gpu": self.plan.micro, "gradient_accumulation_steps": self.plan.grad_accum,
                 "gradient_clipping": self.cfg.max_grad_norm,
                 "train_batch_size": self.plan.micro * self.plan.grad_accum * self.plan.world_size}
        for key, value in fills.items():
            if ds.get(key, "auto") == "auto":
                ds[key] = value
        if "optimizer" in ds or "scheduler" in ds:
            raise ConfigError("deepspeed_config", "remove the optimizer/scheduler blocks from the DeepSpeed json: PPO "
                                                  "builds its own AdamW and learning-rate schedule")

    # ------------------------------------------------------------------------------------------ the algorithm
    def step(self) -> dict[str, float]:
        timer = Timer()
        with timer("rollout"):
            prompts = self._next_prompts()
            exp = self.rollout(prompts)
        with timer("score"):
            completions = decode_responses(self.tokenizer, exp.response_ids, exp.response_mask)
            exp.scores, raw = self.score(prompts, exp, completions)
            cut = (~exp.has_eos).tolist()
            self.rollout_flags = degenerate_stats(completions, cut)["flags"]
        with timer("advantages"):
            adv_stats = self.compute_advantages(exp)
        with timer("update"):
            update_stats = self.update(exp)
        self.kl_ctl.update(adv_stats["kl/ref_k1"], n_steps=self.cfg.rollout_batch_size)
        self.state.step += 1
        return {**self._rollout_stats(exp, raw), **self._local_means(rollout_metrics(completions, cut)), **adv_stats,
                **update_stats, **timer.times}

    def _next_prompts(self) -> list:
        batch = self.stream.next_batch(self.cfg.rollout_batch_size)     # the same global batch on every process
        n, i = self.plan.rollout_per_process, self.acc.process_index
        return batch[i * n:(i + 1) * n]

    @torch.no_grad()
    def rollout(self, prompts: list) -> Experience:
        cfg, tok, device = self.cfg, self.tokenizer, self.acc.device
        query_seqs = tokenize_prompts(tok, prompts, cfg.prompt_format, cfg.max_prompt_length)
        chunks = []
        with unwrap_for_generation(self.model, self.acc) as unwrapped:
            for s in range(0, len(query_seqs), self.plan.generation_batch):
                q, qm = left_pad(query_seqs[s:s + self.plan.generation_batch], tok.pad_token_id, device)
                r = sample(unwrapped.policy, q, qm, max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature,
                           eos_ids=self.eos_ids, pad_id=tok.pad_token_id)
                chunks.append((q, qm, r))
        parts = []
        for q, qm, r in chunks:
            mask, has_eos, r = response_mask(r, self.eos_ids, tok.pad_token_id)
            ids, attn, T = torch.cat([q, r], 1), torch.cat([qm, torch.ones_like(r)], 1), r.shape[1]
            logits, values = self.model(ids, attn, T)
            logprobs = token_logprobs(logits / cfg.temperature, r)
            del logits
            ref_logprobs = self._ref_logprobs(ids, attn, r)
            parts.append(Experience(query_ids=q, query_mask=qm, response_ids=r, response_mask=mask, logprobs=logprobs,
                                    ref_logprobs=ref_logprobs, values=values * mask, scores=torch.zeros(len(q), device=device),
                                    has_eos=has_eos))
        return Experience.concat(parts, tok.pad_token_id)

    def _ref_logprobs(self, ids, attn, response_ids) -> torch.Tensor:
        T = response_ids.shape[1]
        kw = dict(input_ids=ids, attention_mask=attn, position_ids=position_ids_from(attn), logits_to_keep=T + 1,
                  use_cache=False)
        if self.ref is None:
            policy = self.acc.unwrap_model(self.model).policy
            with policy.disable_adapter():
                logits = policy(**kw).logits[:, :-1]
        else:
            logits = self.ref(**kw).logits[:, :-1]
        return token_logprobs(logits / self.cfg.temperature, response_ids)

    def score(self, prompts: list, exp: Experience, completions: list[str] | None = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """(scores used for training, raw source scores), both [B]."""
        if completions is None:
            completions = decode_responses(self.tokenizer, exp.response_ids, exp.response_mask)
        raw = torch.tensor(self.reward(prompts, completions), dtype=torch.float32, device=self.acc.device)
        if not torch.isfinite(raw).all():
            raise UserError(f"reward source {self.reward.name} returned a non-finite reward")
        scores = postprocess_scores(raw, exp.has_eos, reward_clip=self.cfg.reward_clip,
                                    missing_eos_penalty=self.cfg.missing_eos_penalty)
        return scores, raw

    def compute_advantages(self, exp: Experience) -> dict[str, float]:
        cfg, mask = self.cfg, exp.response_mask
        kl = kl_estimate(exp.logprobs, exp.ref_logprobs, cfg.kl_estimator) * mask                      # [B, T]
        rewards = -self.kl_ctl.value * kl
        last = mask.sum(1) - 1                                                                           # [B]
        rewards[torch.arange(len(exp), device=rewards.device), last] += exp.scores
        if cfg.whiten_rewards:
            mean, var = self._global_mean_var(rewards, mask)
            rewards = whiten(rewards, mask, mean, var, shift_mean=False)
        advantages, returns = gae(rewards, exp.values, mask, cfg.gamma, cfg.gae_lambda)
        if cfg.whiten_advantages:
            mean, var = self._global_mean_var(advantages, mask)
            advantages = whiten(advantages, mask, mean, var)
        exp.kl, exp.rewards, exp.advantages, exp.returns = kl, rewards, advantages, returns
        k3 = kl_estimate(exp.logprobs, exp.ref_logprobs, "k3") * mask
        k1 = kl_estimate(exp.logprobs, exp.ref_logprobs, "k1") * mask
        _, var_ret = self._global_mean_var(returns, mask)
        _, var_err = self._global_mean_var(returns - exp.values, mask)
        return {"kl/ref_k1": self._mean(k1.sum(1)), "kl/ref_k3": self._mean(k3.sum(1)), "kl/beta": self.kl_ctl.value,
                "value/explained_variance": float(1 - var_err / var_ret) if var_ret > 0 else float("nan")}

    def update(self, exp: Experience) -> dict[str, float]:
        cfg, plan, acc = self.cfg, self.plan, self.acc
        self.model.train()
        sums: dict[str, float] = {}
        n_micro, grad_norms = 0, []
        for _ in range(cfg.ppo_epochs):
            order = torch.randperm(len(exp))
            for m0 in range(0, len(exp), plan.mini_per_process):
                factor = lr_factor(self.state.update, plan.total_updates, cfg.warmup_steps, cfg.lr_scheduler)
                for group, base in zip(self.optimizer.param_groups, self.base_lrs):
                    group["lr"] = base * factor
                mini_tokens = self._global_tokens(exp.response_mask[order[m0:m0 + plan.mini_per_process]])
                for u0 in range(m0, m0 + plan.mini_per_process, plan.micro):
                    batch = exp.select(order[u0:u0 + plan.micro]).trimmed()
                    # the micro-batch's share of the mini-batch's tokens, undoing the 1/grad_accum (accumulate) and
                    # 1/world_size (gradient all-reduce) averages: the update is a token mean over the whole
                    # mini-batch, whatever micro_batch_size and the number of processes
                    weight = float(batch.response_mask.sum()) / mini_tokens * plan.grad_accum * acc.num_processes
                    with acc.accumulate(self.model):
                        stats = self._micro_step(batch, weight)
                        if acc.sync_gradients:
                            norm = acc.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm)
                            if norm is not None:
                                grad_norms.append(float(norm))
                        self.optimizer.step()
                        self.optimizer.zero_grad()
                    for k, v in stats.items():
                        sums[k] = sums.get(k, 0.0) + v
                    n_micro += 1
                self.state.update += 1
        self.model.eval()
        local = torch.tensor([sums[k] / n_micro for k in sorted(sums)], device=acc.device)
        glob = acc.reduce(local, "mean") if acc.num_processes > 1 else local
        out = dict(zip(sorted(sums), glob.tolist()))
        out["optim/lr"] = self.base_lrs[0] * lr_factor(self.state.update - 1, plan.total_updates, cfg.warmup_steps,
                                                       cfg.lr_scheduler)
        if grad_norms:
            out["optim/grad_norm"] = sum(grad_norms) / len(grad_norms)
        return out

    def _micro_step(self, b: Experience, weight: float = 1.0) -> dict[str, float]:
        """Forward/backward one micro-batch; its token-mean loss is backpropagated × `weight` (see `update`)."""
        cfg = self.cfg
        ids = torch.cat([b.query_ids, b.response_ids], 1)
        attn = torch.cat([b.query_mask, torch.ones_like(b.response_ids)], 1)
        logits, values = self.model(ids, attn, b.response_ids.shape[1])
        logits = logits / cfg.temperature
        logprobs = token_logprobs(logits, b.response_ids)
        pg_loss, pg = policy_loss(logprobs, b.logprobs, b.advantages, b.response_mask, cfg.cliprange)
        vf_loss, vf = value_loss(values, b.values, b.returns, b.response_mask, cfg.cliprange_value)
        if cfg.entropy_coef:
            entropy = masked_mean(entropy_from_logits(logits), b.response_mask)
        else:                               # a statistic only: no graph through the full-vocabulary softmax
            with torch.no_grad():
                entropy = masked_mean(entropy_from_logits(logits.detach()), b.response_mask)
        loss = pg_loss + cfg.vf_coef * vf_loss - cfg.entropy_coef * entropy
        self.acc.backward(loss * weight)
        return {"ppo/loss": loss.item(), "ppo/policy_loss": pg_loss.item(), "ppo/entropy": entropy.item(),
                "value/loss": vf_loss.item(), "value/clipfrac": vf["clipfrac"].item(),
                **{f"ppo/{k}": v.item() for k, v in pg.items()}}

    # ------------------------------------------------------------------------------------------ statistics
    def _mean(self, x: torch.Tensor) -> float:
        t = torch.stack([x.float().sum(), torch.tensor(float(x.numel()), device=x.device)])
        if self.acc.num_processes > 1:
            t = self.acc.reduce(t, "sum")
        return float(t[0] / t[1].clamp(min=1))

    def _global_tokens(self, mask: torch.Tensor) -> float:
        """Response tokens under `mask`, summed over the processes (≥ 1)."""
        t = mask.sum().float().reshape(1)
        if self.acc.num_processes > 1:
            t = self.acc.reduce(t, "sum")
        return max(float(t), 1.0)

    def _global_mean_var(self, x: torch.Tensor, mask: torch.Tensor):
        m = masked_moments(x.float(), mask)
        if self.acc.num_processes > 1:
            m = self.acc.reduce(m, "sum")
        return moments_to_mean_var(m)

    def _rollout_stats(self, exp: Experience, raw: torch.Tensor) -> dict[str, float]:
        mean = self._mean(exp.scores)
        sq = self._mean(exp.scores**2)
        stats = {"rollout/reward_mean": mean, "rollout/reward_std": math.sqrt(max(0.0, sq - mean**2)),
                 "rollout/raw_reward_mean": self._mean(raw),
                 "rollout/response_length": self._mean(exp.response_mask.sum(1).float()),
                 "rollout/eos_frac": self._mean(exp.has_eos.float())}
        return {**stats, **self._local_means(source_metrics(self.reward))}

    def _local_means(self, metrics: dict[str, float]) -> dict[str, float]:
        """Per-process values averaged over the processes."""
        return {k: self._mean(torch.tensor([v], device=self.acc.device)) for k, v in metrics.items()}

    # ------------------------------------------------------------------------------------------ the run
    def resume_if_asked(self) -> int:
        cfg = self.cfg
        found = latest_checkpoint(cfg.output_dir)
        if cfg.resume:
            if found is None:
                raise UserError(f"{cfg.output_dir}: resume is true but there is no checkpoint under checkpoints/")
            load_checkpoint(self.acc, found, self.state)
            self.acc.print(f"resumed from {found} at step {self.state.step}")
        elif found is not None:
            raise UserError(f"{cfg.output_dir} already has checkpoints (newest {found.name}); pass --resume to continue "
                            "it, or choose another --output_dir")
        return self.state.step

    def train(self) -> Path | None:
        """Run to `num_steps` (or `max_steps_this_run` more steps); returns the exported policy dir when finished."""
        cfg, acc = self.cfg, self.acc
        policy_dir = Path(cfg.output_dir) / "policy"
        if cfg.resume and is_complete(cfg.output_dir) and policy_dir.is_dir():
            acc.print(f"{cfg.output_dir} is complete; nothing to resume")
            return policy_dir
        start = self.resume_if_asked()
        stop = cfg.num_steps if cfg.max_steps_this_run is None else min(cfg.num_steps, start + cfg.max_steps_this_run)
        if acc.is_main_process:
            save_config(cfg, Path(cfg.output_dir) / "config.yaml")
            acc.print(self.plan.describe())  # before the progress bar starts, not inside its line
        logger = RunLogger(cfg.output_dir, total_steps=cfg.num_steps, enabled=acc.is_main_process,
                           tensorboard=cfg.tensorboard, start_step=start, desc="ppo")
        t0 = time.perf_counter()
        saved_at, pending, warned = start, {}, []
        try:
            while self.state.step < stop:
                metrics = {**self.step(), **pending}
                step = self.state.step
                logger.log(metrics, step)          # before the checkpoint: a resumed run never lacks a logged step
                if self.rollout_flags != warned:   # a line when the rollouts turn degenerate (or change how)
                    warned = self.rollout_flags
                    logger.write(f"ppo step {step}: degenerate rollouts: {', '.join(warned)}" if warned
                                 else f"ppo step {step}: rollouts no longer degenerate")
                pending = {}
                if cfg.save_steps and step % cfg.save_steps == 0 and step < cfg.num_steps:
                    t_save = time.perf_counter()
                    save_checkpoint(acc, cfg.output_dir, step, cfg.save_total_limit, self.state)
                    pending["timing/save"], saved_at = time.perf_counter() - t_save, step
                if step % cfg.plot_steps == 0:
                    logger.plot()
            if self.state.step < cfg.num_steps and saved_at != self.state.step:
                save_checkpoint(acc, cfg.output_dir, self.state.step, cfg.save_total_limit, self.state)   # stopping early: keep place
            logger.plot()
        finally:
            logger.close()
        if self.state.step < cfg.num_steps:
            return None
        policy_dir = self.export()
        if acc.is_main_process:
            write_run_json(cfg.output_dir, cfg, seed=cfg.seed, timings={"train_s": time.perf_counter() - t0},
                           extra={"batch_plan": dataclasses.asdict(self.plan),
                                  "world_size": acc.num_processes, "reward_source": self.reward.name})
            mark_complete(cfg.output_dir, policy=str(policy_dir), steps=self.state.step)
        acc.wait_for_everyone()
        return policy_dir

    def export(self) -> Path:
        """Collective under ZeRO-3 (gathers the weights); the main process writes `output_dir/policy`."""
        state_dict = self.acc.get_state_dict(self.model)
        out = Path(self.cfg.output_dir) / "policy"
        if self.acc.is_main_process:
            export_policy(self.cfg, {k: v.detach().cpu() for k, v in state_dict.items()}, self.tokenizer, out)
        self.acc.wait_for_everyone()
        return out
