"""Which built-in fact tables do the default models actually hold? (chooses BUILTIN_TASKS and DEFAULT_TASK)

For each model (one loaded at a time) and each candidate table, in both forms (claims: true object + 1 distractor
per subject; pairs: the two orderings of a good and a bad answer), on `--n-groups` subjects:

- zero-shot per-claim accuracy: sign of s = log P(T) − log P(F), T/F = every vocabulary token whose stripped,
  lower-cased text is "true"/"false"; plus the AUROC of s (threshold-free);
- zero-shot within-group accuracy: the true candidate (claims) / the right ordering (pairs) has the larger s;
- golden many-shot ICL: `--shots-claims`/`--shots-pairs` gold demonstrations (docs/icm.md `demo_text` format, one
  claim from each of distinct held-out groups, half True) before each query; per-claim and within-group accuracy;
- a supervised linear probe on the hidden state of the claim prompt's last token: ridge (λ = feature count on
  standardised features), 5-fold CV with folds by group, at every layer; claims use φ(claim), pairs the
  antisymmetric φ(A-first) − φ(B-first). The best layer is picked on the same folds, so the same sweep on shuffled
  labels is reported as the selection-bias floor.

An "arithmetic" table (a + b = c) runs as a negative control. Run:
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/task_selection.py            # ~10 min per model on one busy CPU core
"""

from __future__ import annotations

import argparse
import copy
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from icm_rm.data.builtin import table_claimset  # noqa: E402
from icm_rm.data.fact_tables import TABLES, FactTable  # noqa: E402
from icm_rm.data.records import ClaimSet  # noqa: E402
from icm_rm.data.tasks import demo_text  # noqa: E402
from icm_rm.infra.io import atomic_write_json, package_versions  # noqa: E402
from icm_rm.infra.lm import load_causal_lm  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "task_selection.json"


def arithmetic_table(n: int = 100, seed: int = 0) -> FactTable:
    """Negative control: 'a + b = c' claims with two-digit operands."""
    rng = random.Random(seed)
    rows, seen = [], set()
    while len(rows) < n:
        a, b = rng.randint(10, 49), rng.randint(10, 49)
        if (a, b) not in seen:
            seen.add((a, b))
            rows.append((f"{a} + {b}", str(a + b)))
    return FactTable(name="arithmetic", rows=tuple(rows), question="What is {subject}?",
                     statement="{subject} = {object}.", description="a + b = c (control)")


# ----------------------------------------------------------------------------------------------- model passes


class LM:
    """A causal LM with its True/False token sets; returns last-token log-odds and per-layer hidden states."""

    def __init__(self, name: str):
        self.model, self.tok = load_causal_lm(name)
        self.tok.padding_side = "right"
        vocab = self.tok.convert_ids_to_tokens(list(range(len(self.tok))))
        words = [self.tok.convert_tokens_to_string([t]).strip().lower() if t is not None else "" for t in vocab]
        self.true_ids = torch.tensor([i for i, w in enumerate(words) if w == "true"])
        self.false_ids = torch.tensor([i for i, w in enumerate(words) if w == "false"])
        self.softcap = getattr(self.model.config, "final_logit_softcapping", None)

    def _log_odds(self, last_hidden: torch.Tensor) -> np.ndarray:
        logits = self.model.lm_head(last_hidden).float()
        if self.softcap:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        logp = torch.log_softmax(logits, dim=-1)
        s = torch.logsumexp(logp[:, self.true_ids], -1) - torch.logsumexp(logp[:, self.false_ids], -1)
        return s.numpy().astype(np.float64)

    @torch.no_grad()
    def encode(self, texts: list[str], batch_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
        """Zero-shot log-odds [n] and last-token hidden states [layers+1, n, d]."""
        scores, states = [], []
        for i in range(0, len(texts), batch_size):
            enc = self.tok(texts[i:i + batch_size], return_tensors="pt", padding=True)
            out = self.model.model(**enc, output_hidden_states=True)
            last = enc["attention_mask"].sum(1) - 1
            rows = torch.arange(len(last))
            scores.append(self._log_odds(out.last_hidden_state[rows, last]))
            states.append(torch.stack([h[rows, last] for h in out.hidden_states]).float().numpy())
        return np.concatenate(scores), np.concatenate(states, axis=1)

    @torch.no_grad()
    def icl_scores(self, context: str, queries: list[str]) -> tuple[np.ndarray, dict]:
        """Log-odds of each query after `context`, reusing the context's KV cache.

        The cached prefix drops the context's last token (BPE merges whitespace across the boundary: "\n\n" alone
        is one token, but "\n" + "\nClaim" in context + query); a query whose tokens still disagree is run in full.
        Also returns checks: |cached − full forward| and |with − without context| on the first query."""
        prefix = self.tok(context, return_tensors="pt").input_ids[:, :-1]
        cache = self.model.model(input_ids=prefix, use_cache=True).cache
        scores, checks = [], {"uncached_queries": 0}
        for j, q in enumerate(queries):
            full = self.tok(context + q, return_tensors="pt").input_ids
            if torch.equal(full[:, :prefix.shape[1]], prefix):
                rest = full[:, prefix.shape[1]:]
                h = self.model.model(input_ids=rest, cache=copy.deepcopy(cache)).last_hidden_state
                s = self._log_odds(h[:, -1])[0]
            else:
                checks["uncached_queries"] += 1
                s = self._log_odds(self.model.model(input_ids=full).last_hidden_state[:, -1])[0]
            if j == 0:
                ref = self._log_odds(self.model.model(input_ids=full).last_hidden_state[:, -1])[0]
                alone = self._log_odds(self.model.model(**self.tok(q, return_tensors="pt")).last_hidden_state[:, -1])[0]
                checks |= {"cache_check_abs": abs(float(s - ref)), "context_effect_abs": abs(float(s - alone))}
            scores.append(s)
        return np.array(scores), checks


# ----------------------------------------------------------------------------------------------- metrics


def auroc(scores: np.ndarray, y: np.ndarray) -> float:
    pos, neg = scores[y], scores[~y]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def group_accuracy(cs: ClaimSet, scores: np.ndarray, idx: list[int] | None = None) -> float:
    """Share of groups whose gold-True claim has the largest score (pairs: the right ordering wins)."""
    idx = list(range(len(cs.claims))) if idx is None else idx
    pos = {i: k for k, i in enumerate(idx)}
    hits = []
    for members in cs.groups().values():
        members = [m for m in members if m in pos]
        if len(members) < 2:
            continue
        best = max(members, key=lambda m: scores[pos[m]])
        hits.append(cs.gold[cs.claims[best].id])
    return float(np.mean(hits)) if hits else float("nan")


def ridge_cv(X: np.ndarray, y: np.ndarray, groups: list[str], *, antisym: bool, folds: int = 5,
             seed: int = 0) -> float:
    """5-fold (by group) CV accuracy of a ridge classifier on ±1 labels; antisym: no centring/intercept, trained
    on (X, y) and (−X, −y) so f(−x) = −f(x)."""
    ug = sorted(set(groups))
    order = random.Random(seed).sample(ug, len(ug))
    fold_of = {g: i % folds for i, g in enumerate(order)}
    fold = np.array([fold_of[g] for g in groups])
    t = np.where(y, 1.0, -1.0)
    pred = np.zeros(len(y))
    lam = X.shape[1]
    for f in range(folds):
        tr, te = fold != f, fold == f
        Xtr, ttr = X[tr], t[tr]
        if antisym:
            Xtr, ttr = np.vstack([Xtr, -Xtr]), np.concatenate([ttr, -ttr])
            mean, bias = np.zeros(X.shape[1]), 0.0
        else:
            mean, bias = Xtr.mean(0), ttr.mean()
        scale = Xtr.std(0) + 1e-6
        Z = (Xtr - mean) / scale
        alpha = np.linalg.solve(Z @ Z.T + lam * np.eye(len(Z)), ttr - bias)
        pred[te] = ((X[te] - mean) / scale) @ (Z.T @ alpha) + bias
    return float(np.mean((pred > 0) == y))


def probe(cs: ClaimSet, states: np.ndarray, *, pairs: bool, seed: int = 0, n_shuffles: int = 5) -> dict:
    """Layer sweep of the CV probe; floor = the best-layer accuracy of the same sweep on shuffled labels, averaged
    over `n_shuffles` permutations (one permutation alone swings by ±0.15 at n ≈ 100)."""
    y_all = np.array([cs.gold[c.id] for c in cs.claims])
    if pairs:  # one antisymmetric example per pair: φ(A>B) − φ(B>A), label = gold(A>B)
        ia = [i for i, c in enumerate(cs.claims) if c.key == "A>B"]
        ib = {cs.claims[i].group: i for i, c in enumerate(cs.claims) if c.key == "B>A"}
        ib = [ib[cs.claims[i].group] for i in ia]
        feats = states[:, ia] - states[:, ib]
        y, groups = y_all[ia], [cs.claims[i].group for i in ia]
    else:
        feats, y, groups = states, y_all, [c.group for c in cs.claims]
    feats = feats.astype(np.float64)
    per_layer = [ridge_cv(feats[layer], y, groups, antisym=pairs, seed=seed) for layer in range(feats.shape[0])]
    floors = []
    for k in range(n_shuffles):
        shuffled = np.random.default_rng(seed + k).permutation(y)
        floors.append(max(ridge_cv(feats[layer], shuffled, groups, antisym=pairs, seed=seed)
                          for layer in range(feats.shape[0])))
    best = int(np.argmax(per_layer))
    fixed = round(2 * (feats.shape[0] - 1) / 3)
    return {"best_layer": best, "best_acc": per_layer[best], "layer_2_3_acc": per_layer[fixed], "fixed_layer": fixed,
            "shuffled_best_acc": float(np.mean(floors)), "per_layer": [round(a, 4) for a in per_layer]}


def icl(lm: LM, cs: ClaimSet, shots: int, seed: int = 0) -> dict:
    """Golden many-shot: `shots` demos, one from each of `shots` held-out groups (half True), before every query of
    the remaining groups."""
    groups = list(cs.groups().items())
    random.Random(seed).shuffle(groups)
    demo_groups, query_groups = groups[:shots], groups[shots:]
    demos = []
    for k, (_, members) in enumerate(demo_groups):
        want = k % 2 == 0
        demos.append(next(m for m in members if cs.gold[cs.claims[m].id] == want))
    random.Random(seed + 1).shuffle(demos)
    context = "".join(demo_text(cs.claims[m].text, cs.gold[cs.claims[m].id]) for m in demos)
    idx = [m for _, members in query_groups for m in members]
    scores, checks = lm.icl_scores(context, [cs.claims[m].text for m in idx])
    y = np.array([cs.gold[cs.claims[m].id] for m in idx])
    return {"shots": shots, "n_queries": len(idx), "claim_acc": float(np.mean((scores > 0) == y)),
            "auroc": auroc(scores, y), "group_acc": group_accuracy(cs, scores, idx), **checks,
            "context_tokens": len(lm.tok(context).input_ids)}


# ----------------------------------------------------------------------------------------------- driver


def evaluate(lm: LM, table: FactTable, form: str, n_groups: int, shots: int, seed: int) -> dict:
    n = min(n_groups, len(table.rows))
    cs = table_claimset(table, form=form, split="all", n_groups=n, seed=seed, n_candidates=2)
    t0 = time.time()
    scores, states = lm.encode([c.text for c in cs.claims])
    y = np.array([cs.gold[c.id] for c in cs.claims])
    out = {"n_groups": n, "n_claims": len(cs.claims),
           "zero_shot": {"claim_acc": float(np.mean((scores > 0) == y)), "auroc": auroc(scores, y),
                         "group_acc": group_accuracy(cs, scores), "mean_log_odds": float(scores.mean())},
           "probe": probe(cs, states, pairs=form == "pairs", seed=seed),
           "icl": icl(lm, cs, shots, seed)}
    out["seconds"] = round(time.time() - t0, 1)
    return out


def summary_rows(results: dict) -> list[str]:
    """Markdown rows: per model × table, the within-group zero-shot / ICL and best-layer probe accuracy."""
    lines = ["| model | table | ZS claim | ZS group | ICL claim | ICL group | probe claims (floor) | "
             "ZS pair | ICL pair | probe pairs (floor) |", "|" + "---|" * 10]
    for model, tables in results.items():
        for name, r in tables.items():
            c, p = r["claims"], r["pairs"]
            lines.append(
                f"| {model} | {name} | {c['zero_shot']['claim_acc']:.2f} | {c['zero_shot']['group_acc']:.2f} | "
                f"{c['icl']['claim_acc']:.2f} | {c['icl']['group_acc']:.2f} | "
                f"{c['probe']['best_acc']:.2f} ({c['probe']['shuffled_best_acc']:.2f}) | "
                f"{p['zero_shot']['group_acc']:.2f} | {p['icl']['group_acc']:.2f} | "
                f"{p['probe']['best_acc']:.2f} ({p['probe']['shuffled_best_acc']:.2f}) |")
    return lines


KEEP_GAP = 0.15  # probe − shuffled floor, on both forms and both models, to keep a table
DEFAULT_GAP = 0.25  # the same, to be eligible as DEFAULT_TASK


def select(results: dict) -> dict:
    """Kept tables and the default: among tables whose probe gap ≥ DEFAULT_GAP everywhere, the one with the highest
    golden-ICL within-group accuracy (claims form) averaged over the models, the signal in-context ICM scoring uses."""
    tables = sorted({t for r in results.values() for t in r})

    def min_gap(t: str) -> float:
        return min(r[t][f]["probe"]["best_acc"] - r[t][f]["probe"]["shuffled_best_acc"]
                   for r in results.values() for f in ("claims", "pairs"))

    gaps = {t: round(min_gap(t), 3) for t in tables}
    kept = [t for t in tables if gaps[t] >= KEEP_GAP]
    icl = {t: round(float(np.mean([r[t]["claims"]["icl"]["group_acc"] for r in results.values()])), 3) for t in tables}
    eligible = [t for t in kept if gaps[t] >= DEFAULT_GAP]
    return {"rule": " ".join(select.__doc__.split()), "keep_gap": KEEP_GAP, "default_gap": DEFAULT_GAP,
            "min_probe_gap": gaps, "mean_icl_group_acc": icl, "kept": kept,
            "default": max(eligible, key=lambda t: icl[t]) if eligible else None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["smollm2-135m", "gemma3-270m"])
    ap.add_argument("--tables", nargs="+", default=[*TABLES, "arithmetic"])
    ap.add_argument("--n-groups", type=int, default=60)
    ap.add_argument("--shots-claims", type=int, default=16)
    ap.add_argument("--shots-pairs", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--from-json", type=Path, default=None,
                    help="recompute the summary and selection of a saved results file (no model runs)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1 is ~6x faster than 2 on a CPU shared with other jobs)")
    args = ap.parse_args(argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    if args.from_json:
        import json

        saved = json.loads(args.from_json.read_text())
        saved |= {"summary_markdown": summary_rows(saved["results"]), "selection": select(saved["results"])}
        atomic_write_json(args.out, saved)
        print("\n".join(saved["summary_markdown"]), "\n", saved["selection"], sep="\n")
        return 0
    tables = {name: (arithmetic_table() if name == "arithmetic" else TABLES[name]) for name in args.tables}
    results, timings = {}, {}
    for model_name in args.models:
        t0 = time.time()
        lm = LM(model_name)
        results[model_name] = {}
        for name, table in tables.items():
            results[model_name][name] = {
                "claims": evaluate(lm, table, "claims", args.n_groups, args.shots_claims, args.seed),
                "pairs": evaluate(lm, table, "pairs", args.n_groups, args.shots_pairs, args.seed)}
            print("\n".join(summary_rows({model_name: {name: results[model_name][name]}})[2:]), flush=True)
        timings[model_name] = round(time.time() - t0, 1)
        del lm
    atomic_write_json(args.out, {
        "description": __doc__.strip().splitlines()[0], "argv": sys.argv[1:],
        "settings": vars(args) | {"out": str(args.out), "from_json": None},
        "versions": package_versions(), "timings_s": timings, "threads": torch.get_num_threads(),
        "summary_markdown": summary_rows(results), "selection": select(results), "results": results})
    print("\n".join(summary_rows(results)), "\n", select(results), sep="\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
