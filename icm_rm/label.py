"""`icm-rm label`: ICM-label a pool of claims or preference pairs, with baselines, reports and resumable state.

    load claims → batches of whole groups → per batch: ICM search (resumable) → sign anchoring (probe)
    → labels.jsonl, preferences.jsonl (+ _gold), report.json, progress.png, TensorBoard, run.json

Gold labels, where the data has them, are read only after each batch's search, for reports and baselines.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .batches import make_batches
from .config import cfg_field, parse_config, save_config
from .data.records import Claim, ClaimSet
from .errors import ConfigError, UserError
from .interrupts import graceful_interrupts
from .io import atomic_write_json, check_writable, is_complete, mark_complete, write_run_json
from .iterative import IterativeConfig, finetune_labeler
from .scoring.probe import ProbeConfig, anchor_sign
from .search import ICMSearch, SearchConfig, SearchInterrupted
from .tasks import get_task


@dataclass
class LabelConfig:
    """ICM labeling of unlabeled claims or preference pairs (`icm-rm label`)."""

    data_format: str = cfg_field("builtin", "where claims come from: builtin, claims, pairs, trl, icm_truthfulqa, "
                                            "icm_alpaca, icm_gsm8k, truthfulqa_csv, gsm8k_solutions, hh_rlhf, …")
    data_path: str | None = cfg_field(None, "input file (not needed for builtin)")
    task: str | None = cfg_field(None, "task name: a built-in task, or the template/rules for a file "
                                       "(null = the format's own default)")
    form: str = cfg_field("pairs", "built-in tasks only: pairs (preference pairs) or claims",
                          choices=("pairs", "claims"))
    split: str = cfg_field("train", "built-in tasks only: train or test subjects", choices=("train", "test"))
    limit_groups: int | None = cfg_field(None, "label only this many groups (whole groups, chosen by data_seed)")
    data_seed: int = cfg_field(0, "seed for choosing groups under limit_groups (pair A/B order is a hash of the id)")
    fields: dict = cfg_field(default_factory=dict, help="column mapping for claims/pairs files: {our_field: "
                                                        "their_column}, e.g. {text: sentence}")

    model: str = cfg_field("smollm2-135m", "labeler LM: registry name (smollm2-135m, gemma3-270m) or a local dir")
    dtype: str = cfg_field("float32", "model dtype: float32, bfloat16, float16")
    device: str = cfg_field("auto", "cpu, cuda, cuda:N or auto")
    scorer: str = cfg_field("probe", "probe | icl | naive | openai (see icm_rm/scoring/factory.py)")
    max_demos: int | None = cfg_field(None, "icl: cap on demonstrations per query (null = all other labeled claims)")
    clamp: float = cfg_field(11.5, "bound on |log-odds|")
    server: dict = cfg_field(default_factory=dict, help="openai scorer: {base_url, model, api_key_env, concurrency, …}")
    probe: ProbeConfig = field(default_factory=ProbeConfig, metadata={"help": "probe scorer settings"})
    feature_cache: str | None = cfg_field(None, "probe feature cache dir (null = $ICM_RM_HOME/features)")

    search: SearchConfig = field(default_factory=SearchConfig, metadata={"help": "annealing settings (Algorithm 1)"})
    batch_size: int = cfg_field(256, "claims per labeling batch (whole groups; each batch is searched on its own)")
    iterative: IterativeConfig = field(default_factory=IterativeConfig,
                                       metadata={"help": "LoRA-fine-tune the labeler between batches (icl scorer)"})
    baselines: bool = cfg_field(True, "also score zero-shot, random-label and golden-label baselines (needs gold)")

    num_shards: int = cfg_field(1, "parallel workers sharing output_dir; each labels batches j ≡ shard_index "
                                   "(mod num_shards); a final run with num_shards 1 and resume true merges")
    shard_index: int = cfg_field(0, "this worker's shard, 0 ≤ shard_index < num_shards (e.g. $RANK)")
    output_dir: str = cfg_field("runs/label", "run directory for labels, preferences and reports")
    resume: bool = cfg_field(False, "continue an interrupted run in output_dir (same config ⇒ same labels)")
    overwrite: bool = cfg_field(False, "delete an existing output_dir first")
    report_to: str = cfg_field("tensorboard", "tensorboard or none", choices=("tensorboard", "none"))

    def __post_init__(self):
        if self.batch_size < 2:
            raise ConfigError("batch_size", f"must be ≥ 2, got {self.batch_size}")
        if self.max_demos is not None and self.max_demos < 1:
            raise ConfigError("max_demos", f"must be ≥ 1 or null, got {self.max_demos}")
        if self.resume and self.overwrite:
            raise ConfigError("resume", "resume and overwrite contradict each other; pick one")
        if self.iterative.enabled and self.scorer not in ("icl", "naive"):
            raise ConfigError("iterative.enabled", f"iterative fine-tuning needs scorer icl or naive, got "
                                                   f"'{self.scorer}'")
        if self.data_format != "builtin" and not self.data_path:
            raise ConfigError("data_path", f"data_format '{self.data_format}' needs data_path")
        if not 0 <= self.shard_index < max(self.num_shards, 1) or self.num_shards < 1:
            raise ConfigError("shard_index", f"need 0 ≤ shard_index < num_shards, got {self.shard_index} of "
                                             f"{self.num_shards}")
        if self.num_shards > 1 and self.iterative.enabled:
            raise ConfigError("num_shards", "iterative labeling is sequential (batch j+1 uses batches ≤ j); "
                                            "use num_shards 1 with iterative.enabled")
        if self.report_to not in ("tensorboard", "none"):
            raise ConfigError("report_to", f"must be tensorboard or none, got '{self.report_to}'")


@dataclass
class BatchOutcome:
    """One batch's search result as saved in `batches/batch_XXX.json`."""

    batch: int
    indices: list
    labels: list
    scores: list
    u: float
    p: float
    i: int
    best_chain: int
    seed_indices: list
    anchored_flip: bool
    chains: list  # per chain: iterations, accepted, proposals, u, history, snapshots
    scorer_stats: dict
    time_s: float


# ----------------------------------------------------------------------------------------------- data

def load_pool(cfg: LabelConfig) -> ClaimSet:
    from .data.spec import load_claimset

    if cfg.data_format == "builtin":
        from .data.builtin import DEFAULT_TASK, builtin_claimset

        return builtin_claimset(cfg.task or DEFAULT_TASK, form=cfg.form, n_groups=cfg.limit_groups,
                                seed=cfg.data_seed, split=cfg.split)
    return load_claimset(cfg.data_format, cfg.data_path, task=cfg.task, limit_groups=cfg.limit_groups,
                         seed=cfg.data_seed, fields=cfg.fields or None)


def task_rules(cfg: LabelConfig, pool: ClaimSet):
    name = cfg.task
    if cfg.data_format == "builtin" and name is None:
        from .data.builtin import DEFAULT_TASK

        name = DEFAULT_TASK
    if name is None:
        name = pool.name
    try:
        return get_task(name).rules
    except ConfigError:
        from .tasks import ConsistencyRules

        return ConsistencyRules()


# ----------------------------------------------------------------------------------------------- the stage

def run_label(cfg: LabelConfig) -> Path:
    """Run the label stage; returns the output dir. Resumable; finished batches are never redone."""
    out = Path(cfg.output_dir)
    if cfg.overwrite and out.exists():
        shutil.rmtree(out)
    sharded = cfg.num_shards > 1
    if out.exists() and any(out.iterdir()) and not cfg.resume and not sharded:
        if is_complete(out):
            raise UserError(f"{out}: already holds a finished label run; pass --resume true to reuse it, "
                            "--overwrite true to redo it, or choose another --output_dir")
        raise UserError(f"{out}: holds an unfinished label run; pass --resume true to continue it or "
                        "--overwrite true to start over")
    if is_complete(out):
        print(f"icm-rm label: {out} is complete; nothing to do", file=sys.stderr)
        return out
    pool = load_pool(cfg)  # bad data or a bad model fails before anything is written
    if not pool.claims:
        raise UserError("the labeling pool is empty (check data_path / limit_groups)")
    rules = task_rules(cfg, pool)

    from .scoring.factory import build_scorer

    bundle = build_scorer(cfg.scorer, cfg.model, dtype=cfg.dtype, device=cfg.device, clamp=cfg.clamp,
                          max_demos=cfg.max_demos, probe_cfg=cfg.probe, server=cfg.server,
                          feature_cache=cfg.feature_cache or _default_feature_cache())
    if cfg.scorer == "probe":
        refuse_overlong_claims(pool.claims, bundle)
    check_writable(out)
    save_config(cfg, out / "config.yaml")
    if cfg.scorer == "probe" and pool.is_pairwise and bundle.likelihood is not None:
        # On pairs the probe's sign and hybrid term come from the LM's own pairwise preference (see likelihood.py).
        bundle.scorer.prior = lambda claims: bundle.likelihood.claim_signal(claims, pool.pairs)
    batches = make_batches(pool.claims, cfg.batch_size)
    outcomes: list[BatchOutcome] = []
    t_start = time.time()
    writer = _tb_writer(out) if cfg.report_to == "tensorboard" else None
    with graceful_interrupts() as stop:
        for j, idx in enumerate(batches):
            result_path = out / "batches" / f"batch_{j:03d}.json"
            if result_path.exists():
                outcomes.append(BatchOutcome(**json.loads(result_path.read_text())))
                continue
            if j % cfg.num_shards != cfg.shard_index:
                continue  # another worker's batch
            if cfg.iterative.enabled and j > 0:
                bundle = _iterate_labeler(cfg, bundle, pool, outcomes, out, j)
            claims = [pool.claims[i] for i in idx]
            outcome = _label_batch(cfg, bundle, claims, idx, rules, j, len(batches), out, stop)
            atomic_write_json(result_path, asdict(outcome))
            outcomes.append(outcome)
            if writer:
                _log_batch(writer, outcome, j)
    if writer:
        writer.close()
    if len(outcomes) < len(batches):
        print(f"icm-rm label: shard {cfg.shard_index}/{cfg.num_shards} done ({len(outcomes)}/{len(batches)} batches "
              f"finished in {out}); when all shards are done, run the same command with --num_shards 1 "
              "--resume true to merge", file=sys.stderr)
        return out

    from .label_outputs import write_outputs

    report = write_outputs(cfg, pool, outcomes, bundle, rules, out, wall_s=time.time() - t_start)
    write_run_json(out, cfg, seed=cfg.search.seed, timings={"label_s": report["time_s"]})
    mark_complete(out, stage="label")
    _print_summary(report, out)
    return out


def refuse_overlong_claims(claims: list[Claim], bundle) -> None:
    """The probe reads each claim alone: one longer than the model's positions would give a meaningless state, so it
    is refused up front (the in-context scorers refuse an over-long context when they meet it)."""
    if bundle.model is None or bundle.tokenizer is None:
        return
    from .scoring.tokens import prefix_ids

    limit = getattr(bundle.model.config.get_text_config(), "max_position_embeddings", None)
    if not limit:
        return
    extra = len(prefix_ids(bundle.tokenizer))
    lengths = bundle.tokenizer([c.text for c in claims], add_special_tokens=False).input_ids
    for c, ids in zip(claims, lengths):
        if extra + len(ids) > limit:
            raise UserError(f"claim '{c.id}': {extra + len(ids)} tokens, more than the model's {limit} positions; "
                            "shorten that text (or drop it), or use a model with a longer context")


def _label_batch(cfg: LabelConfig, bundle, claims: list[Claim], idx: list[int], rules, j: int, n_batches: int,
                 out: Path, stop) -> BatchOutcome:
    t0 = time.time()
    search = ICMSearch(claims, bundle.scorer, rules, cfg.search)
    total = cfg.search.iterations * cfg.search.restarts
    bar = tqdm(total=total, desc=f"ICM batch {j + 1}/{n_batches}", unit="it", dynamic_ncols=True)

    def on_step(st) -> None:
        from .search import temperature

        bar.n = st.chain * cfg.search.iterations + st.iteration
        bar.set_postfix(U=f"{st.u:.2f}", T=f"{temperature(cfg.search, st.accepted):.2f}", acc=st.accepted,
                        labeled=f"{sum(y is not None for y in st.labels)}/{len(claims)}", refresh=False)
        bar.update(0)

    try:
        result = search.run(state_path=out / "state" / f"batch_{j:03d}.json", resume=True, should_stop=stop,
                            on_step=on_step)
    except SearchInterrupted as e:
        bar.close()
        raise UserError(f"{e}; state saved in {out / 'state'} — rerun with --resume true to continue") from None
    except BaseException:
        bar.close()  # an error message then starts on its own line, not glued onto the bar
        raise
    bar.n = total
    bar.close()
    labels, flipped = result.labels, False
    if cfg.scorer == "probe":
        prior = getattr(bundle.scorer, "prior", None)
        z = prior(claims) if prior is not None else bundle.zero_shot(claims)
        labels, flipped = anchor_sign(claims, labels, z, lambda ls: search.evaluate(ls).u)
    ev = search.evaluate(labels)
    best = result.chains[result.best_chain]
    chains = [{"chain": c.chain, "iterations": c.iteration, "accepted": c.accepted, "proposals": c.proposals,
               "u": c.u, "history": c.history, "snapshots": c.snapshots} for c in result.chains]
    return BatchOutcome(batch=j, indices=list(idx), labels=list(labels), scores=_finite(ev.scores), u=ev.u, p=ev.p,
                        i=ev.i, best_chain=result.best_chain, seed_indices=best.seed_indices, anchored_flip=flipped,
                        chains=chains, scorer_stats=_scorer_stats(bundle), time_s=time.time() - t0)


def _iterate_labeler(cfg: LabelConfig, bundle, pool: ClaimSet, outcomes: list[BatchOutcome], out: Path, j: int):
    """Fine-tune on batches 0..j-1's labels (or reload the adapter saved for this point) and rebuild the scorer."""
    from .scoring.factory import ScorerBundle
    from .scoring.base import zero_shot_scores

    adapter_dir = out / "labeler_lora" / f"after_batch_{j - 1:03d}"
    if (adapter_dir / "adapter_config.json").exists():
        from peft import PeftModel

        base = bundle.model.get_base_model() if hasattr(bundle.model, "get_base_model") else bundle.model
        model = PeftModel.from_pretrained(base, str(adapter_dir)).eval()
    else:
        claims = [pool.claims[i] for o in outcomes for i in o.indices]
        labels = [y for o in outcomes for y in o.labels]
        keep = [k for k, y in enumerate(labels) if y is not None]
        model = finetune_labeler(bundle.model, bundle.tokenizer, [claims[k] for k in keep], [labels[k] for k in keep],
                                 cfg.iterative, save_dir=adapter_dir)
    if cfg.scorer == "icl":
        from .scoring.hf import HFScorer as Cls
    else:
        from .scoring.naive import NaiveScorer as Cls
    scorer = Cls(model, bundle.tokenizer, clamp=cfg.clamp, max_demos=cfg.max_demos)
    return ScorerBundle(scorer=scorer, zero_shot=lambda claims: zero_shot_scores(scorer, claims), model=model,
                        tokenizer=bundle.tokenizer)


def _scorer_stats(bundle) -> dict:
    stats = dict(bundle.scorer.stats.as_dict())
    extractor = getattr(bundle.scorer, "extractor", None)
    if extractor is not None:
        stats["forward_tokens"] = stats.get("forward_tokens", 0) + extractor.forward_tokens
    return stats


def _finite(a) -> list:
    return [None if not np.isfinite(x) else float(x) for x in a]


def _default_feature_cache() -> Path:
    from .models import icm_rm_home

    return icm_rm_home() / "features"


def _tb_writer(out: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard not installed: reports still land in report.json / progress.png
        return None
    return SummaryWriter(log_dir=str(out / "tb"))


def _log_batch(writer, o: BatchOutcome, j: int) -> None:
    """icm/* scalars per iteration of the winning chain, namespaced per batch."""
    hist = o.chains[o.best_chain]["history"]
    for it, u, p, i, t, acc, n_lab in hist:
        writer.add_scalar(f"icm/energy/batch_{j}", u, it)
        writer.add_scalar(f"icm/predictability/batch_{j}", p, it)
        writer.add_scalar(f"icm/inconsistency/batch_{j}", i, it)
        writer.add_scalar(f"icm/temperature/batch_{j}", t, it)
        writer.add_scalar(f"icm/accepted/batch_{j}", acc, it)
        writer.add_scalar(f"icm/labeled/batch_{j}", n_lab, it)
    writer.flush()


def _print_summary(report: dict, out: Path) -> None:
    lines = [f"icm-rm label: {report['n_claims']} claims in {report['n_batches']} batch(es), "
             f"U={report['final']['u']:.3f} P={report['final']['p']:.3f} I={report['final']['i']}, "
             f"{report['time_s']:.0f}s"]
    acc = report.get("accuracy")
    if acc:
        parts = [f"ICM {_pct(acc.get('pair', acc.get('claim')))}"]
        for name, b in (report.get("baselines") or {}).items():
            parts.append(f"{name} {_pct(b.get('pair', b.get('claim')))}")
        lines.append("accuracy vs gold: " + ", ".join(parts))
    lines.append(f"outputs in {out}/ (labels.jsonl, report.json, progress.png)")
    print("\n".join(lines), file=sys.stderr)


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def main(argv: list[str] | None = None) -> int:
    cfg, _ = parse_config(LabelConfig, argv, prog="icm-rm label")
    run_label(cfg)
    return 0


if __name__ == "__main__":
    from .cli import run_main

    sys.exit(run_main(main, None))
