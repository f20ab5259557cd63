"""One `log()` for RL runs: TensorBoard scalars, a tqdm bar, `metrics.jsonl`, and `training.png` (reward and KL).

Metric names are namespaced; what each averages:
  rollout/reward_mean      mean sequence score (after normalisation, clipping and EOS penalty) over the step's rollouts
  rollout/reward_std       its standard deviation over the rollouts
  rollout/response_length  mean response tokens (up to and including EOS)
  rollout/eos_frac         fraction of responses that ended with EOS
  rollout/empty_frac, rollout/distinct_frac, rollout/cut_frac
                           degenerate rollouts (rl/degenerate.py): empty, distinct and cut-at-max_new_tokens fractions
  reward/<source>          per-source raw mean of a weighted mix (before clipping)
  kl/ref_k1, kl/ref_k3     mean over rollouts of Σ_t KL estimate(π‖π_ref) per sequence
  kl/beta                  the KL coefficient used for this step's rewards
  ppo/policy_loss, ppo/clipfrac, ppo/approx_kl_k1, ppo/approx_kl_k3, ppo/entropy, ppo/ratio
                           means over every micro-batch of every PPO epoch (approx_kl: π_old → π, per token)
  value/loss, value/clipfrac   same averaging, for the value head
  value/explained_variance 1 − Var(returns − values)/Var(returns) over the rollout's response tokens
  optim/lr, optim/grad_norm    learning rate; mean pre-clip gradient norm over the step's optimizer steps
  timing/<phase>           seconds spent in rollout, score, advantages, update, save
Only the main process writes; other processes' `log()` is a no-op.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from icm_rm.infra.io import atomic_write_bytes, save_figure

PLOT_KEYS = (("rollout/reward_mean", "reward"), ("kl/ref_k1", "KL(π‖π_ref) per sequence"))


def say(line: str) -> None:
    """One line on stderr that does not break a tqdm progress bar."""
    from tqdm.auto import tqdm

    tqdm.write(line, file=sys.stderr)


class RunLogger:
    def __init__(self, output_dir: str | Path, *, total_steps: int, enabled: bool = True, tensorboard: bool = True,
                 start_step: int = 0, desc: str = "ppo", plot_keys=PLOT_KEYS, progress: bool = True):
        self.dir = Path(output_dir)
        self.enabled = enabled
        self.plot_keys = plot_keys
        self.metrics_path = self.dir / "metrics.jsonl"
        self.writer = None
        self.bar = None
        if not enabled:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        self._truncate_after(start_step)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                # purge_step drops events a killed run wrote after its last checkpoint, so the resumed curve is one line.
                self.writer = SummaryWriter(str(self.dir / "tensorboard"), purge_step=start_step + 1 if start_step else None)
            except ImportError:  # tensorboard not installed: metrics.jsonl and the PNG still work
                self.writer = None
        if progress:    # off when the caller has its own bar (TRL's Trainer)
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total_steps, initial=start_step, desc=desc, dynamic_ncols=True)

    def _truncate_after(self, step: int) -> None:
        """Drop rows past `step` (written by a run killed before its next checkpoint)."""
        if not self.metrics_path.exists():
            return
        rows = [line for line in self.metrics_path.read_text().splitlines() if line.strip()]
        kept = [r for r in rows if json.loads(r).get("step", 0) <= step]
        if len(kept) != len(rows):
            atomic_write_bytes(self.metrics_path, "".join(r + "\n" for r in kept).encode())

    def log(self, metrics: dict[str, float], step: int) -> None:
        if not self.enabled:
            return
        clean = {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(float(v))}
        with self.metrics_path.open("a") as f:
            f.write(json.dumps({"step": step, **clean}) + "\n")
        if self.writer is not None:
            for k, v in clean.items():
                self.writer.add_scalar(k, v, step)
            self.writer.flush()
        if self.bar is not None:
            show = {k.split("/")[-1]: f"{clean[k]:.3g}" for k in ("rollout/reward_mean", "kl/ref_k1", "value/loss")
                    if k in clean}
            self.bar.set_postfix(show, refresh=False)
            self.bar.update(step - self.bar.n)

    def write(self, line: str) -> None:
        """A line on the terminal above the progress bar (main process only)."""
        if self.enabled:
            say(line)

    def history(self) -> list[dict]:
        if not self.metrics_path.exists():
            return []
        return [json.loads(line) for line in self.metrics_path.read_text().splitlines() if line.strip()]

    def plot(self, path: str | Path | None = None) -> Path | None:
        """`training.png`: one panel per plotted metric against the step."""
        if not self.enabled:
            return None
        rows = self.history()
        if not rows:
            return None

        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(self.plot_keys), figsize=(5 * len(self.plot_keys), 3.4), squeeze=False)
        for ax, (key, title) in zip(axes[0], self.plot_keys):
            pts = [(r["step"], r[key]) for r in rows if key in r]
            if pts:
                ax.plot(*zip(*pts), marker="o" if len(pts) < 40 else None, lw=1.5)
            ax.set_title(title)
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
        fig.tight_layout()
        return save_figure(fig, Path(path or self.dir / "training.png"))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.bar is not None:
            self.bar.close()
