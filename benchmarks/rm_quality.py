"""How good is a reward model trained on ICM labels? Compared with the same RM trained on gold labels and on random
labels of the same pairs, on held-out sets.

    python benchmarks/rm_quality.py --label_run runs/label [--model smollm2-135m] [--eval_limit 200]

Given a label-stage run dir (`preferences.jsonl` = ICM labels, `preferences_gold.jsonl` = gold labels of the same
pairs), it holds out a seeded `test_fraction` of the pairs (whole prompts), trains three RMs (LoRA by default) on the
rest — (a) ICM labels, (b) gold labels, (c) random labels — and evaluates each on: the held-out pairs with gold
labels, the built-in task's test split when the label run used a built-in task (or the ICM paper's test file for its
formats), the labeled file's own unlabeled pairs when it has no separate test file (HH-RLHF, ICM Alpaca: the shared
copies are test splits, so they replace that file among the shared sets), and the shared human-preference sets
(`--eval_limit` pairs each). Prints the accuracy table with 95% Wilson CIs, next to what the label run itself
reported (its labels' accuracy vs gold, baselines and warnings), and writes benchmarks/results/rm_quality.json.
"""

from __future__ import annotations

import json
import random
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import yaml

from icm_rm.infra.quiet import quiet_third_party

if __name__ == "__main__":  # the table, not pages of third-party warnings (ICM_RM_DEBUG=1 keeps them); before
    quiet_third_party()     # transformers is imported, which reads its verbosity once

from icm_rm.data.preferences import (PREFERENCE_FORMATS, PreferenceExample, load_preferences,  # noqa: E402
                                     write_preferences_jsonl)
from icm_rm.infra.config import cfg_field, parse_config  # noqa: E402
from icm_rm.infra.errors import InputError, UserError  # noqa: E402
from icm_rm.infra.io import atomic_write_json, package_versions  # noqa: E402
from icm_rm.infra.runner import run_main  # noqa: E402
from icm_rm.label.summary import accuracy_line  # noqa: E402
from icm_rm.reward.config import RewardModelConfig  # noqa: E402
from icm_rm.reward.data import holdout_split  # noqa: E402
from icm_rm.reward.evaluate import EvalRMConfig, markdown_report, run_eval  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
SHARED_SETS = ["icm_unsupervised_elicitation/test_alpaca.json", "hh_rlhf/helpful-base/test.jsonl.gz",
               "hh_rlhf/harmless-base/test.jsonl.gz", "fine_grained_rlhf_qa_feedback/dev_feedback.json",
               "icm_unsupervised_elicitation/test_truthfulqa_preference.json"]
# label-stage data formats whose source has a held-out test file in the shared data
FORMAT_TEST_FILES = {"icm_alpaca": "icm_unsupervised_elicitation/test_alpaca.json",
                     "icm_truthfulqa_preference": "icm_unsupervised_elicitation/test_truthfulqa_preference.json"}
LABELS = ("icm", "gold", "random")


@dataclass
class RMQualityConfig:
    """ICM vs gold vs random labels: held-out accuracy of the reward models trained on each."""

    label_run: str = cfg_field("runs/label", help="label-stage run dir with preferences.jsonl and "
                                                  "preferences_gold.jsonl")
    model: str = cfg_field("smollm2-135m", help="base model of the three RMs (registry name or local dir)")
    use_lora: bool = cfg_field(True, help="LoRA (merged on export) instead of full fine-tuning")
    trainer: dict = cfg_field(default_factory=lambda: {"learning_rate": 3e-4, "num_train_epochs": 4,
                                                       "per_device_train_batch_size": 8,
                                                       "lr_scheduler_type": "constant"},
                              help="TRL RewardConfig fields for all three RMs (default: the demo pipeline's LoRA RM)")
    max_length: int = cfg_field(1024, help="RM max tokens per text")
    test_fraction: float = cfg_field(0.2, help="fraction of the labeled pairs held out (whole prompts, seeded)")
    eval_limit: int | None = cfg_field(200, help="pairs per evaluation set, the held-out split included (null = all)")
    shared_data: str = cfg_field(str(SHARED), help="the shared data dir")
    shared_sets: list[str] = cfg_field(default_factory=lambda: list(SHARED_SETS),
                                       help="shared held-out sets (paths under shared_data, FILE[:format])")
    batch_size: int = cfg_field(16, help="scoring batch size")
    seed: int = cfg_field(0, help="seed of the split, the random labels and training")
    output_dir: str = cfg_field("runs/bench/rm_quality", help="where the data splits and the three RM runs go")
    results: str = cfg_field(str(REPO / "benchmarks" / "results" / "rm_quality.json"), help="results JSON")


def read_label_run(run: Path) -> tuple[list[PreferenceExample], list[PreferenceExample]]:
    """The ICM and gold preference examples of the same pairs, row by row (checked)."""
    icm_path, gold_path = run / "preferences.jsonl", run / "preferences_gold.jsonl"
    for p in (icm_path, gold_path):
        if not p.exists():
            raise InputError(p, None, None, "missing: rm_quality needs a label run over data with gold labels")
    icm, gold = load_preferences(icm_path, "trl").examples, load_preferences(gold_path, "trl").examples
    if len(icm) != len(gold):
        raise InputError(gold_path, None, None, f"{len(gold)} pairs but preferences.jsonl has {len(icm)}")
    for i, (a, b) in enumerate(zip(icm, gold)):
        if a.prompt != b.prompt or {_key(a.chosen), _key(a.rejected)} != {_key(b.chosen), _key(b.rejected)}:
            raise InputError(gold_path, i + 1, None, "not the same pair as the same row of preferences.jsonl")
    return icm, gold


def _key(x) -> str:
    return yaml.safe_dump(x) if not isinstance(x, str) else x


def random_labels(gold: list[PreferenceExample], seed: int) -> list[PreferenceExample]:
    """Each pair's order flipped by a fair seeded coin."""
    rng = random.Random(f"rm_quality|random|{seed}")
    return [replace(e, chosen=e.rejected, rejected=e.chosen, margin=None) if rng.random() < 0.5 else
            replace(e, margin=None) for e in gold]


def builtin_test_set(run: Path, limit: int | None) -> list[PreferenceExample] | None:
    """The label run's built-in task test split as gold preference examples (None for non-built-in data)."""
    cfg_path = run / "config.yaml"
    if not cfg_path.exists():
        return None
    label_cfg = yaml.safe_load(cfg_path.read_text()) or {}
    if label_cfg.get("data_format") != "builtin" or label_cfg.get("form", "pairs") != "pairs":
        return None
    from icm_rm.data.builtin import DEFAULT_TASK, builtin_claimset

    cs = builtin_claimset(label_cfg.get("task") or DEFAULT_TASK, form="pairs", split="test")
    out = []
    for pid, pair in list(cs.pairs.items())[:limit]:
        a_better = cs.gold[f"{pid}:A>B"]
        chosen, rejected = (pair.response_a, pair.response_b) if a_better else (pair.response_b, pair.response_a)
        out.append(PreferenceExample(id=pid, prompt=pair.prompt, chosen=chosen, rejected=rejected))
    return out


def label_report(run: Path) -> dict | None:
    """What the label run told its user (report.json): labeler, accuracy vs gold, baselines, diagnostics, warnings."""
    path = run / "report.json"
    if not path.exists():
        return None
    rep = json.loads(path.read_text())
    keep = ("model", "scorer", "n_pairs", "accuracy", "baselines", "strongest_baseline", "diagnostics", "warnings",
            "time_s", "forward_tokens")
    return {k: rep[k] for k in keep if k in rep}


def label_source(run: Path) -> tuple[str | None, Path | None]:
    """The label run's data format and its source file (resolved; None where it has none, e.g. built-in tasks)."""
    cfg_path = run / "config.yaml"
    label_cfg = (yaml.safe_load(cfg_path.read_text()) or {}) if cfg_path.exists() else {}
    path = label_cfg.get("data_path")
    return label_cfg.get("data_format"), Path(path).resolve() if path else None


def format_test_file(run: Path, shared: Path) -> str | None:
    """The shared held-out file of the label run's format, unless that file is what the run labeled."""
    fmt, source = label_source(run)
    if fmt not in FORMAT_TEST_FILES or (shared / FORMAT_TEST_FILES[fmt]).resolve() == source:
        return None
    return str(shared / FORMAT_TEST_FILES[fmt])


def unlabeled_source_set(run: Path, labeled: list[PreferenceExample], shared: Path, limit: int | None
                         ) -> list[PreferenceExample] | None:
    """For a label run over a file with no separate held-out file (the shared HH-RLHF and ICM Alpaca copies are test
    splits): that file's pairs whose prompt the labeler never saw, the first `limit` of them (None: not such a run)."""
    fmt, source = label_source(run)
    if (source is None or fmt not in PREFERENCE_FORMATS or not source.exists()
            or format_test_file(run, shared) is not None):
        return None
    seen = {_key(e.prompt) for e in labeled}
    rest = [e for e in load_preferences(source, fmt).examples if _key(e.prompt) not in seen]
    return rest[:limit] if limit is not None else rest


def agreement(a: list[PreferenceExample], b: list[PreferenceExample]) -> float:
    return sum(x.chosen == y.chosen for x, y in zip(a, b)) / max(len(a), 1)


def prepare_data(cfg: RMQualityConfig, out: Path) -> tuple[dict[str, Path], Path, dict]:
    """Train files per label source + the gold held-out file, split by prompt (identical across sources)."""
    icm, gold = read_label_run(Path(cfg.label_run))
    rnd = random_labels(gold, cfg.seed)
    train_gold, test_gold = holdout_split(gold, cfg.test_fraction, cfg.seed)
    held_ids = {e.id for e in test_gold}
    files = {}
    for name, examples in zip(LABELS, (icm, gold, rnd)):
        files[name] = out / "data" / f"train_{name}.jsonl"
        write_preferences_jsonl(files[name], [e for e in examples if e.id not in held_ids])
    test_path = out / "data" / "test_gold.jsonl"
    write_preferences_jsonl(test_path, test_gold)
    train_icm = [e for e in icm if e.id not in held_ids]
    info = {"n_pairs": len(gold), "n_train": len(train_gold), "n_test": len(test_gold),
            "icm_label_accuracy_train": agreement(train_icm, train_gold),
            "random_label_accuracy_train": agreement([e for e in rnd if e.id not in held_ids], train_gold),
            "label_report": label_report(Path(cfg.label_run))}
    return files, test_path, info


def train_one(cfg: RMQualityConfig, name: str, train: Path, test: Path, out: Path) -> Path:
    from icm_rm.reward.trainer import train_reward_model

    rm_cfg = RewardModelConfig(model=cfg.model, train_data=str(train), eval_data=str(test), label_source=name,
                               output_dir=str(out / f"rm_{name}"), seed=cfg.seed, max_length=cfg.max_length,
                               use_lora=cfg.use_lora, trainer=dict(cfg.trainer), overwrite=True)
    return train_reward_model(rm_cfg).model_dir


def eval_sets(cfg: RMQualityConfig, test: Path, out: Path) -> list[str]:
    sets = [f"{test}:trl"]
    run, shared = Path(cfg.label_run), Path(cfg.shared_data)
    builtin = builtin_test_set(run, cfg.eval_limit)
    if builtin:
        path = out / "data" / "builtin_test.jsonl"
        write_preferences_jsonl(path, builtin)
        sets.append(f"{path}:trl")
    shared_paths = [str(shared / s) for s in cfg.shared_sets]
    unlabeled = unlabeled_source_set(run, read_label_run(run)[1], shared, cfg.eval_limit)
    if unlabeled is not None:
        path = out / "data" / "source_unlabeled.jsonl"
        write_preferences_jsonl(path, unlabeled)
        sets.append(f"{path}:trl")
        source = label_source(run)[1]
        labeled_from = [p for p in shared_paths if Path(p.rsplit(":", 1)[0]).resolve() == source]
        if labeled_from:  # its first pairs include the labeled ones: the unlabeled rest replaces it
            print(f"rm_quality: {labeled_from[0]} is the label run's source; evaluating on its {len(unlabeled)} "
                  "unlabeled pairs instead", file=sys.stderr)
            shared_paths = [p for p in shared_paths if p not in labeled_from]
    task_file = format_test_file(run, shared)
    if task_file and task_file not in shared_paths:
        sets.append(task_file)
    missing = [p for p in shared_paths if not Path(p.rsplit(":", 1)[0]).exists()]
    if missing:
        print(f"rm_quality: skipping missing shared sets: {', '.join(missing)}", file=sys.stderr)
    return sets + [p for p in shared_paths if p not in missing]


def main(argv: list[str] | None = None) -> int:
    cfg, _ = parse_config(RMQualityConfig, argv, prog="benchmarks/rm_quality.py")
    if not 0 < cfg.test_fraction < 1:
        raise UserError(f"test_fraction must be in (0, 1), got {cfg.test_fraction}")
    out = Path(cfg.output_dir)
    t0 = time.time()
    files, test, info = prepare_data(cfg, out)
    rm_dirs = {name: train_one(cfg, name, files[name], test, out) for name in LABELS}
    t_train = time.time() - t0
    ev = EvalRMConfig(model=[str(rm_dirs[n]) for n in LABELS], data=eval_sets(cfg, test, out),
                      output_dir=str(out / "eval"), limit=cfg.eval_limit, batch_size=cfg.batch_size)
    doc = run_eval(ev)
    names = dict(zip(ev.model, LABELS))
    for r in doc["results"]:
        r["labels"] = names[r["model"]]
    md = markdown_report(doc).replace("rm_icm/model", "ICM labels").replace("rm_gold/model", "gold labels") \
        .replace("rm_random/model", "random labels")
    print(f"# RM quality: {cfg.model}{' LoRA' if cfg.use_lora else ''}, label run {cfg.label_run}\n")
    print(f"{info['n_train']} training pairs (ICM labels agree with gold on {info['icm_label_accuracy_train']:.3f}), "
          f"{info['n_test']} held-out pairs\n")
    if rep := info["label_report"]:
        print(f"label run ({rep.get('model')}, {rep.get('scorer')}): {accuracy_line(rep) or 'no gold in its report'}")
        print("".join(f"label run WARNING: {w['message']}\n" for w in rep.get("warnings", [])))
    print(md)
    atomic_write_json(cfg.results, {"config": asdict(cfg), "data": info, "eval": doc, "markdown": md,
                                    "timings": {"train_s": t_train, "total_s": time.time() - t0},
                                    "versions": package_versions()})
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, sys.argv[1:]))
