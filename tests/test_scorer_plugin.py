"""A scorer is a plug-in: the example of docs/architecture.md (tests/testkit/example_scorer.py), registered by one
line, runs through the whole label stage; the built-in scorers answer the whole interface."""

import json

import numpy as np
import pytest

from icm_rm.data.records import Claim
from icm_rm.infra.config import from_dict
from icm_rm.infra.errors import ConfigError, UserError
from icm_rm.label import LabelConfig, run_label
from icm_rm.label.batches import make_batches
from icm_rm.label.search import ICMSearch
from icm_rm.label.stage import load_pool, task_rules
from icm_rm.scoring.base import Scorer
from icm_rm.scoring.hf import HFScorer
from icm_rm.scoring.naive import NaiveScorer
from icm_rm.scoring.probe import ProbeScorer
from icm_rm.scoring.registry import SCORERS
from testkit.example_scorer import OverlapScorer


def test_example_scorer_runs_through_the_label_stage(tmp_path, monkeypatch):
    monkeypatch.setitem(SCORERS, "overlap", OverlapScorer)  # the one registry line
    cfg = from_dict(LabelConfig, {"scorer": "overlap", "form": "claims", "limit_groups": 6, "batch_size": 12,
                                  "report_to": "none", "output_dir": str(tmp_path / "run"),
                                  "search": {"iterations": 60, "seed": 3}})
    run_label(cfg)
    rows = [json.loads(line) for line in (tmp_path / "run" / "labels.jsonl").read_text().splitlines()]
    # the stage's labels are the search's own with this scorer (it fixes its sign itself: no anchoring)
    pool = load_pool(cfg)
    expect: dict[int, bool | None] = {}
    for idx in make_batches(pool.claims, cfg.batch_size):
        result = ICMSearch([pool.claims[i] for i in idx], OverlapScorer(cfg.clamp), task_rules(cfg, pool),
                           cfg.search).run()
        expect.update(zip(idx, result.labels))
    assert [r["label"] for r in rows] == [expect[i] for i in sorted(expect)]
    assert all(r["label"] is not None for r in rows)
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["scorer"] == "overlap" and report["scorer_stats"]["queries"] > 0
    assert list(report["baselines"]) == ["zero_shot", "random_label", "golden_label"]
    monkeypatch.delitem(SCORERS, "overlap")
    with pytest.raises(ConfigError, match="unknown scorer 'overlap'; choose one of: probe, icl, naive, openai"):
        from_dict(LabelConfig, {"scorer": "overlap"})


def test_registered_scorers_are_complete_plugins():
    for name, cls in SCORERS.items():
        assert issubclass(cls, Scorer) and cls.summary, name
        assert cls.build is not Scorer.build, f"{name}: no build()"
    assert [n for n, c in SCORERS.items() if c.finetunable] == ["icl", "naive"]
    with pytest.raises(ConfigError, match="iterative fine-tuning needs scorer icl or naive, got 'probe'"):
        from_dict(LabelConfig, {"scorer": "probe", "iterative": {"enabled": True}})


def test_probe_interface_on_pairs():
    """The probe's verdicts: T/F log-odds from its features; with a prior, the within-pair comparison of the prior,
    which also picks the sign; its baseline variant drops the hybrid term and the prior."""
    claims = [Claim(id=f"p{g}:{k}", group=f"p{g}", key=k, text=f"{g} {k}") for g in range(3) for k in ("A>B", "B>A")]
    rng = np.random.default_rng(0)
    table = {c.text: rng.normal(size=4) for c in claims}
    z = {c.text: float(i) for i, c in enumerate(claims)}
    prior = np.array([0.5, -0.5, 2.0, 1.0, -1.0, 3.0])
    probe = ProbeScorer(lambda ts: (np.stack([table[t] for t in ts]), np.array([z[t] for t in ts])),
                        prior=lambda cs: prior[[claims.index(c) for c in cs]])
    verdicts = probe.zero_shot_verdicts(claims)
    np.testing.assert_array_equal(verdicts["tf"], np.arange(6.0))
    np.testing.assert_array_equal(verdicts["likelihood"], [1.0, -1.0, 1.0, -1.0, -4.0, 4.0])
    np.testing.assert_array_equal(probe.sign_verdict(claims), prior)
    plain = probe.baseline()
    assert plain.prior is None and plain.cfg.zero_shot_weight == 0.0 and probe.cfg.zero_shot_weight > 0
    assert probe.work_stats()["forward_tokens"] == 0


def test_rebuilt_keeps_the_settings_and_drops_the_prior(tiny_model, tiny_tok):
    """Iterative labeling's fine-tuned labeler: same class and settings, no prior (its likelihoods are not the LM's)."""
    prior = lambda cs: np.zeros(len(cs))  # noqa: E731
    fast = HFScorer(tiny_model, tiny_tok, clamp=5.0, max_demos=3, kv_budget_mb=8, prior=prior).rebuilt(tiny_model)
    assert type(fast) is HFScorer and (fast.clamp, fast.max_demos, fast.kv_budget_mb, fast.prior) == (5.0, 3, 8, None)
    assert HFScorer(tiny_model, tiny_tok).rebuilt(tiny_model).kv_budget_request is None  # sized afresh
    naive = NaiveScorer(tiny_model, tiny_tok, clamp=4.0, prior=prior).rebuilt(tiny_model)
    assert type(naive) is NaiveScorer and (naive.clamp, naive.max_demos, naive.prior) == (4.0, None, None)
    with pytest.raises(UserError, match="cannot be fine-tuned between batches"):
        ProbeScorer(lambda ts: (np.zeros((len(ts), 2)), np.zeros(len(ts)))).rebuilt(tiny_model)
