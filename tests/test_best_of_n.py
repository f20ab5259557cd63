"""best-of-n: the best-of-k estimator and on-policy pair accuracy by hand and against enumeration, and a tiny run."""

import itertools
import json

import numpy as np
import pytest

from icm_rm.infra.errors import ConfigError

from rl.best_of_n import BestOfNConfig, best_of_k, pair_counts, rm_metrics, run_best_of_n


def test_best_of_k_by_hand():
    r, g = [3.0, 1.0, 2.0], [1.0, 0.0, 0.0]
    assert best_of_k(r, g, 1) == pytest.approx(1 / 3)  # one answer at random
    assert best_of_k(r, g, 2) == pytest.approx(2 / 3)  # {3,1} → 1, {3,2} → 1, {1,2} → the 2, judged 0
    assert best_of_k(r, g, 3) == pytest.approx(1.0)
    assert best_of_k([1.0, 1.0], [1.0, 0.0], 2) == pytest.approx(0.5)  # a reward tie is not broken by order
    with pytest.raises(ValueError):
        best_of_k(r, g, 4)


def test_best_of_k_equals_enumeration():
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(2, 7))
        r, g = rng.integers(0, 3, n).astype(float), rng.random(n)  # few reward values: ties happen
        for k in range(1, n + 1):
            vals = []
            for sub in itertools.combinations(range(n), k):
                top = max(r[i] for i in sub)
                vals.append(np.mean([g[i] for i in sub if r[i] == top]))  # a tie at the top: its mean
            assert best_of_k(r, g, k) == pytest.approx(np.mean(vals))


def test_pair_counts_by_hand():
    assert pair_counts([3.0, 1.0, 2.0], [1.0, 0.0, 0.0]) == (2.0, 2)  # (0,1), (0,2) right; (1,2) judged alike
    assert pair_counts([1.0, 1.0, 0.0], [1.0, 0.0, 0.0]) == (1.5, 2)  # an RM tie counts half
    assert pair_counts([0.0, 1.0], [1.0, 0.0]) == (0.0, 1)


def test_rm_metrics_order_rms_by_how_they_rank_the_answers():
    rng = np.random.default_rng(1)
    judged = rng.integers(0, 2, size=(30, 6)).astype(float)
    perfect = rm_metrics(judged + 0.01 * rng.random(judged.shape), judged)
    flat = rm_metrics(np.zeros_like(judged), judged)
    inverted = rm_metrics(-judged, judged)
    assert perfect["pair_accuracy"] == 1.0 and inverted["pair_accuracy"] == 0.0 and flat["pair_accuracy"] == 0.5
    assert flat["gain"]["diff"] == pytest.approx(0.0)  # all tied: best-of-n is one answer at random
    assert perfect["gain"]["diff"] > 0 > inverted["gain"]["diff"]
    assert perfect["best_of_n"] == pytest.approx(judged.max(axis=1).mean())
    assert list(perfect["best_of_k"]) == ["1", "2", "4", "6"]
    assert perfect["best_of_k"]["1"] == pytest.approx(judged.mean())


def test_config_refuses_bad_values():
    with pytest.raises(ConfigError, match="n"):
        BestOfNConfig(rms=["a=b"], n=1)
    with pytest.raises(ConfigError, match="temperature"):
        BestOfNConfig(rms=["a=b"], temperature=0)


def test_best_of_n_end_to_end_tiny(tmp_path):
    from test_rl_rewards import save_tiny_rm
    from testkit.tiny_models import save_tiny_model

    pol = save_tiny_model(tmp_path / "pol", seed=0)
    a, b = save_tiny_rm(tmp_path / "rm_a", seed=1), save_tiny_rm(tmp_path / "rm_b", seed=2)
    cfg = BestOfNConfig(rms=[f"a={a}", f"b={b}"], policy=str(pol), prompts="builtin:capitals", max_prompts=4, n=3,
                        max_new_tokens=4, output_dir=str(tmp_path / "out"), device="cpu")
    doc = run_best_of_n(cfg)
    assert doc["n_prompts"] == 4 and doc["n"] == 3 and doc["judge"].startswith("gold checker")
    assert set(doc["results"]) == {"a", "b"} and [(v["rm"], v["versus"]) for v in doc["versus"]] == [("a", "b")]
    rows = [json.loads(x) for x in (tmp_path / "out" / "best_of_n_samples.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(len(r["answers"]) == len(r["judged"]) == len(r["a_reward"]) == 3 for r in rows)
    for name in ("a", "b"):  # the report's numbers are those of the written samples
        rec = rm_metrics(np.array([r[f"{name}_reward"] for r in rows]), np.array([r["judged"] for r in rows]))
        assert doc["results"][name]["best_of_n"] == pytest.approx(rec["best_of_n"])
    for f in ("best_of_n.json", "best_of_n.md", "best_of_k.png", "config.yaml", "run.json"):
        assert (tmp_path / "out" / f).exists()
    with pytest.raises(ConfigError, match="judge"):
        run_best_of_n(BestOfNConfig(rms=[f"a={a}"], policy=str(pol), prompts="builtin:capitals", judge=str(a),
                                    output_dir=str(tmp_path / "out2"), device="cpu"))
