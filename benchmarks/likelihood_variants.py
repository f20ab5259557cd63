"""Is the inverted likelihood verdict (issue 16: test4's rhymes and safe_advice) a surface-form effect that a
calibrated verdict would fix? Per pair task and model, the pair accuracy vs gold of four zero-shot likelihood verdicts:

- `mean`: mean log π(response | prompt) per token — what the label stage uses (baseline, hybrid term, fallback);
- `sum`: the summed log-likelihood (longer responses pay per token);
- `pmi_mean` / `pmi_sum`: the same minus the response's log-likelihood after an empty prompt — the domain-conditional
  PMI of Holtzman et al. (2021, "Surface Form Competition"), which discounts responses likely in any context.

    python benchmarks/likelihood_variants.py [--models …] [--roles dev test4 …]

A variant could replace `mean` only if it is at least as good on every dev task. Writes
results/likelihood_variants.json and prints one table per role. Gold is read for the report only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from icm_rm.infra.quiet import quiet_third_party

if __name__ == "__main__":  # the table, not pages of third-party warnings; before transformers is imported
    quiet_third_party()

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED, md_table, write_result  # noqa: E402

from icm_rm.data.protocol import DEV, ROLES, load_protocol_task, tasks_of  # noqa: E402
from icm_rm.data.tasks import render_content  # noqa: E402
from icm_rm.infra.lm import load_causal_lm  # noqa: E402
from icm_rm.scoring.likelihood import ResponseLikelihood  # noqa: E402

VARIANTS = ("mean", "sum", "pmi_mean", "pmi_sum")


def measure(model, tokenizer, task: str) -> dict | None:
    """Pair accuracy of each variant vs gold on one task (None for claim tasks or a missing real set)."""
    cs = load_protocol_task(task, SHARED)
    if cs is None or not cs.is_pairwise:
        return None
    a_better = {str(c.meta.get("pair", c.group)): cs.gold[c.id] for c in cs.claims if c.key == "A>B"}
    pairs = [p for p in cs.pairs.values() if p.id in a_better]
    items = []
    for p in pairs:
        prompt = render_content(p.prompt)
        for r in (render_content(p.response_a), render_content(p.response_b)):
            items += [(prompt, r), ("", r)]
    s = np.array(ResponseLikelihood(model, tokenizer, show_progress=False).summed_logprobs(items),
                 dtype=float).reshape(len(pairs), 2, 2, 2)  # pair, response, conditional | null prompt, (sum, n)
    total, n = s[..., 0], s[..., 1]
    score = {"mean": total[:, :, 0] / n[:, :, 0], "sum": total[:, :, 0],
             "pmi_mean": total[:, :, 0] / n[:, :, 0] - total[:, :, 1] / n[:, :, 1],
             "pmi_sum": total[:, :, 0] - total[:, :, 1]}
    gold = np.array([a_better[p.id] for p in pairs])
    return {"pairs": len(pairs), **{v: float(np.mean((score[v][:, 0] > score[v][:, 1]) == gold)) for v in VARIANTS}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=["smollm2-135m", "gemma3-270m"])
    ap.add_argument("--roles", nargs="*", default=list(ROLES), choices=ROLES)
    ap.add_argument("--name", default="likelihood_variants", help="results/<name>.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    results: dict = {}
    for m in args.models:
        model, tokenizer = load_causal_lm(m, dtype=None, device="cpu")
        for role in args.roles:
            for task in tasks_of(role):
                r = measure(model, tokenizer, task)
                if r is not None:
                    results.setdefault(m, {})[task] = {"role": role, **r}
                    print(f"[{m}] {role} {task}: " + ", ".join(f"{v} {100 * r[v]:.1f}" for v in VARIANTS),
                          file=sys.stderr, flush=True)
    pct = lambda x: f"{100 * x:.1f}"  # noqa: E731
    for role in args.roles:
        rows = [[m, t, r["pairs"], *(pct(r[v]) for v in VARIANTS)]
                for m, per in results.items() for t, r in per.items() if r["role"] == role]
        if rows:
            print(f"\n{role}\n" + md_table(["model", "task", "pairs", *VARIANTS], rows))
    worse = {m: {v: [t for t, r in per.items() if r["role"] == DEV and r[v] < r["mean"]] for v in VARIANTS[1:]}
             for m, per in results.items()}  # a variant that loses on any dev task cannot be the default
    print(f"dev tasks where a variant is below `mean`: {worse}")
    path = write_result(args.name, {"settings": {"models": args.models, "roles": args.roles, "null_prompt": ""},
                                    "results": results, "dev_tasks_below_mean": worse})
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
