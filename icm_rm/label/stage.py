"""`icm-rm label`: ICM-label a pool of claims or preference pairs, with baselines, reports and resumable state.

    load claims → build the scorer (checks the pool) → batches of whole groups → per batch: ICM search (resumable;
    chains from random seeds and from the LM's zero-shot verdicts; the highest-U labeling it can name) → gold-free
    diagnostics → pairs: the likelihood fallback where they say so (fallback.py) → labels.jsonl, preferences.jsonl
    (+ _gold), report.json, progress.png, TensorBoard, run.json

Gold labels, where the data has them, are read only after each batch's search, for reports and baselines.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..data.builtin import DEFAULT_TASK, builtin_claimset
from ..data.records import Claim, ClaimSet
from ..data.spec import load_claimset
from ..data.task_registry import get_task
from ..data.tasks import ConsistencyRules
from ..infra.config import parse_config, save_config
from ..infra.errors import ConfigError, UserError
from ..infra.interrupts import StopFlag, graceful_interrupts
from ..infra.io import atomic_write_json, check_writable, is_complete, mark_complete, write_run_json
from ..infra.runner import run_main
from ..infra.runs import (aside_dir, check_resume, finish_overwrite, recover_swap, resume_forced, set_aside,
                          start_overwrite)
from ..scoring.base import Scorer
from ..scoring.registry import build_scorer
from ..scoring.verdicts import zero_shot_signal
from .batches import make_batches
from .config import LabelConfig
from .diagnostics import broken_groups, diagnose
from .fallback import likelihood_fallback
from .iterative import next_labeler
from .outputs import log_batch, print_summary, tb_writer, write_outputs
from .search import ChainState, ICMSearch, SearchInterrupted, temperature
from .search_state import StateFile


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
    anchored_flip: bool  # the winner is the mirror image of a chain's best-seen labeling
    chains: list  # per chain: origin, replica, iterations, accepted, proposals, u, best_u, history, snapshots
    scorer_stats: dict
    time_s: float
    shard: int = 0  # the worker (shard_index) that searched this batch
    candidates: list = field(default_factory=list)  # every labeling the search named: U, P, I, origin (best first)
    diagnostics: dict = field(default_factory=dict)  # gold-free: agreement, orientation margin, balance, …


# ----------------------------------------------------------------------------------------------- data

def load_pool(cfg: LabelConfig) -> ClaimSet:
    if cfg.data_format == "builtin":
        return builtin_claimset(cfg.task or DEFAULT_TASK, form=cfg.form, n_groups=cfg.limit_groups,
                                seed=cfg.data_seed, split=cfg.split)
    return load_claimset(cfg.data_format, cfg.data_path, task=cfg.task, limit_groups=cfg.limit_groups,
                         seed=cfg.data_seed, fields=cfg.fields or None)


def task_rules(cfg: LabelConfig, pool: ClaimSet) -> ConsistencyRules:
    name = cfg.task
    if cfg.data_format == "builtin" and name is None:
        name = DEFAULT_TASK
    if name is None:
        name = pool.name
    try:
        return get_task(name).rules
    except ConfigError:
        return ConsistencyRules()


# ----------------------------------------------------------------------------------------------- the stage

def run_label(cfg: LabelConfig) -> Path:
    """Run the label stage; returns the output dir. Resumable; finished batches are never redone. Every input is
    checked before an existing run is touched; `overwrite` writes the new run aside and swaps it in when complete."""
    final = Path(cfg.output_dir)
    shards = launcher_shards(cfg)
    if cfg.overwrite and shards[0] > 1:
        raise ConfigError("overwrite", "several workers share output_dir: remove it before starting them instead")
    recover_swap(final)
    replacing = cfg.overwrite and final.is_dir() and any(final.iterdir())
    out = aside_dir(final) if replacing else final
    if not replacing:
        _refuse_used_output_dir(cfg, out, sharded=shards[0] > 1)
    resuming = bool(cfg.resume) or shards[0] > 1  # the shards of one run share its dir: each must match its config
    if resuming and not replacing and not resume_forced(cfg):
        check_resume(out, cfg, _inputs(cfg), write=False)  # a changed config or data is refused before any model loads
    if is_complete(out) and not replacing:
        check_resume(out, cfg, _inputs(cfg), force=resume_forced(cfg))
        print(f"icm-rm label: {out} is complete; nothing to do", file=sys.stderr)
        return out
    pool = load_pool(cfg)  # bad data or a bad model fails before anything is written
    if not pool.claims:
        raise UserError("the labeling pool is empty (check data_path / limit_groups)")
    rules = task_rules(cfg, pool)
    scorer = build_scorer(cfg, pool)
    if replacing:
        out = start_overwrite(final)
    check_writable(out)
    check_resume(out, cfg, _inputs(cfg), force=resume_forced(cfg), resuming=resuming)
    save_config(cfg, out / "config.yaml")
    if cfg.carry_labels:
        scorer.prepare(pool.claims)  # one feature space for every batch and the labels carried between them
    batches = make_batches(pool.claims, cfg.batch_size)
    t_start = time.time()
    scorer, outcomes = _label_batches(cfg, scorer, pool, batches, rules, out, shards)
    if len(outcomes) < len(batches):  # the worker that finishes last finds every batch done and merges
        outcomes = [o for j in range(len(batches))
                    if (o := _saved(out / "batches" / f"batch_{j:03d}.json", _read_outcome)) is not None]
    if len(outcomes) < len(batches):
        print(f"icm-rm label: shard {shards[1]}/{shards[0]} done ({len(outcomes)}/{len(batches)} batches finished "
              f"in {out}); the last worker to finish writes the outputs (or run the same command with "
              "--num_shards 1 --resume true)", file=sys.stderr)
        return out
    report = write_outputs(cfg, pool, outcomes, scorer, rules, out, wall_s=time.time() - t_start)
    by_shard = {s: [o.batch for o in outcomes if o.shard == s] for s in sorted({o.shard for o in outcomes})}
    write_run_json(out, cfg, seed=cfg.search.seed, timings={"label_s": report["time_s"]},
                   extra={"world_size": shards[2], "num_shards": shards[0], "batches_by_shard": by_shard})
    mark_complete(out, stage="label")
    if out != final:
        finish_overwrite(out, final)
    print_summary(report, final)
    return final


def _inputs(cfg: LabelConfig) -> dict[str, str | None]:
    return {"data_path": cfg.data_path if cfg.data_format != "builtin" else None}


def launcher_shards(cfg: LabelConfig) -> tuple[int, int, int]:
    """(num_shards, shard_index, world size): under `accelerate launch` / torchrun (WORLD_SIZE > 1) every process is
    one shard of the batches; otherwise the config's num_shards / shard_index."""
    world = int(os.environ.get("WORLD_SIZE") or 1)
    if world <= 1:
        return cfg.num_shards, cfg.shard_index, 1
    if cfg.num_shards not in (1, world):
        raise ConfigError("num_shards", f"{cfg.num_shards} differs from the launcher's {world} processes; leave "
                                        "num_shards at 1 under accelerate launch (each process is one shard)")
    if cfg.iterative.enabled or cfg.carry_labels:
        raise ConfigError("iterative.enabled" if cfg.iterative.enabled else "carry_labels",
                          f"sequential labeling cannot run on {world} processes; launch one process")
    return world, int(os.environ.get("RANK") or 0), world


def _refuse_used_output_dir(cfg: LabelConfig, out: Path, sharded: bool) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: output_dir is a file, not a directory; choose another --output_dir")
    if out.exists() and any(out.iterdir()) and not cfg.resume and not sharded:
        if is_complete(out):
            raise UserError(f"{out}: already holds a finished label run; pass --resume true to reuse it, "
                            "--overwrite true to redo it, or choose another --output_dir")
        raise UserError(f"{out}: holds an unfinished label run; pass --resume true to continue it or "
                        "--overwrite true to start over")


def _read_outcome(path: Path) -> BatchOutcome:
    return BatchOutcome(**json.loads(path.read_text(encoding="utf-8")))


def _read_state(path: Path) -> Path:
    StateFile(path).load()
    return path


def _saved(path: Path, read):
    """A saved batch result or search state read with `read`, or None when absent; an unreadable one (damaged
    since it was written) is set aside — kept, never deleted, a search state with its log — and that batch is
    searched again."""
    if not path.exists():
        return None
    try:
        return read(path)
    except (OSError, ValueError, TypeError, KeyError, UserError) as e:
        if read is _read_state and path.with_suffix(".log").exists():
            set_aside(path.with_suffix(".log"), "its state file is unreadable", then="searching that batch again")
        set_aside(path, str(e).splitlines()[0][:160], then="searching that batch again")
        return None


def _label_batches(cfg: LabelConfig, scorer: Scorer, pool: ClaimSet, batches: list[list[int]], rules, out: Path,
                   shards: tuple[int, int, int]) -> tuple[Scorer, list[BatchOutcome]]:
    """This worker's batches (finished ones are read back); returns the last scorer used and every outcome."""
    outcomes: list[BatchOutcome] = []
    carried = None  # carry_labels: the batches so far, in order, as the scorer keeps them
    writer = tb_writer(out) if cfg.report_to == "tensorboard" else None
    with graceful_interrupts() as stop:
        for j, idx in enumerate(batches):
            result_path = out / "batches" / f"batch_{j:03d}.json"
            if (done := _saved(result_path, _read_outcome)) is not None:
                outcomes.append(done)
            elif j % shards[0] != shards[1]:
                continue  # another worker's batch
            else:
                if cfg.iterative.enabled and j > 0:
                    done = [pool.claims[i] for o in outcomes for i in o.indices]
                    scorer = next_labeler(scorer, cfg.iterative, done, [y for o in outcomes for y in o.labels],
                                          out / "labeler_lora" / f"after_batch_{j - 1:03d}")
                claims = [pool.claims[i] for i in idx]
                outcomes.append(_label_batch(cfg, scorer, claims, idx, rules, j, len(batches), out, stop, carried))
                outcomes[-1].shard = shards[1]
                atomic_write_json(result_path, asdict(outcomes[-1]))
                if writer:
                    log_batch(writer, outcomes[-1], j)
            if cfg.carry_labels:  # sequential: every batch before j is in `carried`
                carried = scorer.carry([pool.claims[i] for i in idx], outcomes[-1].labels, onto=carried)
    if writer:
        writer.close()
    return scorer, outcomes


def _label_batch(cfg: LabelConfig, scorer: Scorer, claims: list[Claim], idx: list[int], rules, j: int,
                 n_batches: int, out: Path, stop: StopFlag, carry=None) -> BatchOutcome:
    t0 = time.time()
    verdicts = {kind: zero_shot_signal(claims, v) for kind, v in scorer.zero_shot_verdicts(claims).items()}
    sign = scorer.sign_verdict(claims)
    search = ICMSearch(claims, scorer, rules, cfg.search, verdicts=verdicts, carry=carry,
                       sign=None if sign is None else zero_shot_signal(claims, sign))
    total = cfg.search.iterations * len(search.chain_plan())
    bar = tqdm(total=total, desc=f"ICM batch {j + 1}/{n_batches}", unit="it", dynamic_ncols=True)

    def on_step(st: ChainState) -> None:
        bar.n = st.chain * cfg.search.iterations + st.iteration
        bar.set_postfix(U=f"{st.u:.2f}", T=f"{temperature(cfg.search, st.accepted):.2f}", acc=st.accepted,
                        labeled=f"{st.history[-1][6] if st.history else 0}/{len(claims)}", refresh=False)
        bar.update(0)

    state_path = out / "state" / f"batch_{j:03d}.json"
    _saved(state_path, _read_state)
    try:
        result = search.run(state_path=state_path, resume=True, should_stop=stop, on_step=on_step)
    except SearchInterrupted as e:
        bar.close()
        raise UserError(f"{e}; state saved in {out / 'state'} — rerun with --resume true to continue") from None
    except BaseException:
        bar.close()  # an error message then starts on its own line, not glued onto the bar
        raise
    bar.n = total
    bar.close()
    labels, ev, win = result.labels, result.evaluation, result.candidates[0]
    diag = diagnose(claims, labels, result.candidates, verdicts,
                    u_mirror=search.evaluate([None if y is None else not y for y in labels]).u,
                    violations=ev.i, groups_broken=broken_groups(search.structure, labels))
    seeds = [] if win.mirrored else result.chains[result.best_chain].seed_indices
    if (fb := likelihood_fallback(search, labels, ev.scores, diag, verdicts, cfg.fallback)) is not None:
        labels, ev, diag["fallback"] = fb  # diag describes the searched labeling (the record keeps it), except
        diag.update(violations=ev.i, groups_broken=broken_groups(search.structure, labels))  # the rules left broken
        seeds = []
    return BatchOutcome(batch=j, indices=list(idx), labels=list(labels), scores=_finite(ev.scores), u=ev.u, p=ev.p,
                        i=ev.i, best_chain=result.best_chain, seed_indices=seeds,
                        anchored_flip=win.mirrored, chains=[_chain_record(c) for c in result.chains],
                        scorer_stats=scorer.work_stats(), time_s=time.time() - t0,
                        candidates=[c.as_dict() for c in result.candidates], diagnostics=diag)


def _chain_record(c: ChainState) -> dict:
    """What batch_XXX.json keeps of a chain (for the report, the plots and TensorBoard)."""
    return {"chain": c.chain, "origin": c.origin, "replica": c.replica, "iterations": c.iteration,
            "accepted": c.accepted, "proposals": c.proposals, "u": c.u,
            "best_u": c.best["u"] if c.best else None, "best_iteration": c.best["iteration"] if c.best else None,
            "history": c.history, "snapshots": c.snapshots}


def _finite(a) -> list:
    return [None if not np.isfinite(x) else float(x) for x in a]


def main(argv: list[str] | None = None) -> int:
    cfg, _ = parse_config(LabelConfig, argv, prog="icm-rm label")
    run_label(cfg)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, None))
