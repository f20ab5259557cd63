"""Does `icm-rm best-of-n` predict RL? Best-of-n of several RMs on the reference policy's own answers, beside the PPO
seed-mean gain each RM gave (read from an earlier results file of `seed_means.py`), and their rank correlation.

    python benchmarks/best_of_n_vs_rl.py --prompts builtin:animal_quiz --n 16 --max_new_tokens 16 \
        --rm icm=RUN/rm_icm/model --rl icm=benchmarks/results/pipeline_e2e_seeds6.json:icm ... --name best_of_n_test
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from icm_rm.reward.stats import spearman
from rl.best_of_n import BestOfNConfig, run_best_of_n

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import md_table, write_result  # noqa: E402


def rl_gain(spec: str) -> dict:
    """FILE.json:route → that route's seed-mean score difference vs the reference (seed_means.py's results)."""
    path, route = spec.rsplit(":", 1)
    r = json.loads(Path(path).read_text())["routes"][route]
    return {"source": spec, "seeds": r.get("seeds"), **r["vs_reference"]["score_diff"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rm", action="append", required=True, help="NAME=RM_DIR")
    ap.add_argument("--rl", action="append", default=[], help="NAME=RESULTS.json:route (PPO seed means of that RM)")
    ap.add_argument("--rl_gain", action="append", default=[], help="NAME=VALUE[@source] where no results file has it")
    ap.add_argument("--prompts", default="builtin:animal_quiz")
    ap.add_argument("--prompt_split", default="test")
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--max_new_tokens", type=int, default=16)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--judge", default=None)
    ap.add_argument("--name", help="write benchmarks/results/NAME.json")
    a = ap.parse_args()
    gains = {s.split("=", 1)[0]: rl_gain(s.split("=", 1)[1]) for s in a.rl}
    for s in a.rl_gain:
        name, val = s.split("=", 1)
        value, _, source = val.partition("@")
        gains[name] = {"diff": float(value), "source": source or "given"}
    with tempfile.TemporaryDirectory() as tmp:
        cfg = BestOfNConfig(rms=a.rm, prompts=a.prompts, prompt_split=a.prompt_split, n=a.n,
                            max_new_tokens=a.max_new_tokens, temperature=a.temperature, judge=a.judge, output_dir=tmp)
        t0 = time.time()
        doc = run_best_of_n(cfg)
        seconds = time.time() - t0
    res = doc["results"]
    rows = [[n, f"{r['gain']['diff']:+.3f} [{r['gain']['ci'][0]:+.3f}, {r['gain']['ci'][1]:+.3f}]",
             f"{r['pair_accuracy']:.3f}", f"{gains[n]['diff']:+.3f}" if n in gains else "–"] for n, r in res.items()]
    print(md_table(["RM", f"best-of-{a.n} gain [95% CI]", "on-policy pair accuracy", "PPO seed-mean gain"], rows))
    both = [n for n in res if n in gains]
    rho = {k: float(spearman([res[n][key] if key != "gain" else res[n]["gain"]["diff"] for n in both],
                             [gains[n]["diff"] for n in both])) for k, key in (("best_of_n_gain", "gain"),
                                                                               ("pair_accuracy", "pair_accuracy"))}
    print(f"Spearman with the PPO gain over {len(both)} RMs: best-of-n gain {rho['best_of_n_gain']:+.2f}, "
          f"pair accuracy {rho['pair_accuracy']:+.2f}; {seconds:.0f} s")
    if a.name:
        for r in res.values():
            r.pop("per_prompt_best_of_n")
        out = write_result(a.name, {"settings": {**vars(a)}, "seconds": seconds, "n_prompts": doc["n_prompts"],
                                    "judge": doc["judge"], "mean_judged": doc["mean_judged"], "results": res,
                                    "rl_gain": gains, "spearman": rho, "versus": doc["versus"]})
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
