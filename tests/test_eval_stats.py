"""Paired statistics of eval-policy, degenerate-output flags, and held-out prompt splits of prompt files."""

import json
import math

import numpy as np
import pytest

from icm_rm.infra.errors import ConfigError, InputError
from rl.degenerate import degenerate_stats, rollout_metrics
from rl.eval_stats import format_diff, paired_difference, sign_test_p
from rl.ppo.data import load_prompts, prompt_in_test_split


def test_sign_test_by_hand():
    assert sign_test_p(9, 1) == pytest.approx(2 * 11 / 1024)  # P(X ≤ 1 | n=10) = 11/1024, two-sided
    assert sign_test_p(1, 9) == sign_test_p(9, 1)
    assert sign_test_p(5, 5) == 1.0 and sign_test_p(0, 0) == 1.0
    assert sign_test_p(0, 6) == pytest.approx(2 / 64)


def test_paired_difference_ci_and_verdict():
    a, b = [1, 1, 1, 0.5, 0] * 12, [0, 0.5, 1, 0.5, 0] * 12
    d = paired_difference(a, b)
    assert d["diff"] == pytest.approx(0.3)
    assert 0 < d["ci"][0] < 0.3 < d["ci"][1] < 0.45 and d["verdict"] == "better"
    assert d["sign_p"] == pytest.approx(sign_test_p(24, 0))
    worse = paired_difference(b, a)
    assert worse["diff"] == pytest.approx(-0.3) and worse["verdict"] == "worse"
    assert worse["ci"] == pytest.approx([-d["ci"][1], -d["ci"][0]], abs=0.05)
    tie = paired_difference([1, 0] * 30, [0, 1] * 30)
    assert tie["diff"] == 0 and tie["ci"][0] < 0 < tie["ci"][1] and tie["verdict"] == "no clear difference"
    same = paired_difference([1, 0, 1], [1, 0, 1])
    assert same["ci"] == [0.0, 0.0] and same["sign_p"] == 1.0 and same["verdict"] == "no clear difference"
    assert paired_difference(a, b)["ci"] == d["ci"]  # seeded
    assert format_diff(d).startswith("+0.300 [+0.")


def test_paired_bootstrap_covers_the_true_difference():
    rng = np.random.default_rng(1)
    hits = 0
    for _ in range(200):
        a = (rng.random(60) < 0.6).astype(float)
        b = (rng.random(60) < 0.4).astype(float)
        lo, hi = paired_difference(a, b, n_boot=2000, seed=int(rng.integers(1 << 30)))["ci"]
        hits += lo <= 0.2 <= hi
    assert 0.88 <= hits / 200 <= 0.99


def test_degenerate_flags():
    s = degenerate_stats(["", " ", "\n"], [False, False, False])
    assert s["all_empty"] and s["flags"] == ["all empty"] and s["empty_frac"] == 1.0
    s = degenerate_stats(["Paris.", "Paris.", "Paris. "], [True, True, False])
    assert s["flags"] == ["all identical", "67% cut at the token limit"] and s["distinct"] == 1
    s = degenerate_stats(["a", "", "", "b"], [False] * 4)
    assert s["flags"] == [] and s["empty_frac"] == 0.5   # at the threshold, not beyond it
    s = degenerate_stats(["a", "", "", ""], [False] * 4)
    assert s["flags"] == ["75% empty"] and not s["all_empty"]
    assert degenerate_stats(["only one"], [False])["flags"] == []
    assert rollout_metrics(["a", "a", "", "b"], [True, False, False, False]) == {
        "rollout/empty_frac": 0.25, "rollout/distinct_frac": 0.75, "rollout/cut_frac": 0.25}


def test_a_prompt_file_is_split_into_disjoint_train_and_test(tmp_path):
    f = tmp_path / "prompts.jsonl"
    prompts = [f"Question number {i}?" for i in range(200)]
    f.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts))
    train, test, every = (load_prompts(str(f), s) for s in ("train", "test", "all"))
    assert not set(train) & set(test) and sorted(train + test) == sorted(every) == sorted(prompts)
    assert 0.2 < len(test) / 200 < 0.4
    assert [p for p in prompts if p in set(test)] == test  # file order kept
    # membership depends on the prompt alone: a longer file keeps every prompt's split
    f.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts + ["a new one?"]))
    assert set(test) <= set(load_prompts(str(f), "test"))
    g = tmp_path / "one.jsonl"
    only = next(p for p in prompts if not prompt_in_test_split(p))
    g.write_text(json.dumps({"prompt": only}) + "\n")
    assert load_prompts(str(g), "train") == [only]
    with pytest.raises(ConfigError) as e:
        load_prompts(str(g), "test")
    assert e.value.key == "prompt_split" and "prompt_split: all" in e.value.message
    with pytest.raises(ConfigError):
        load_prompts(str(g), "dev")


def test_a_prompt_file_reads_as_the_label_stage_reads_it(tmp_path):
    """The file a user labeled from (JSONL, JSON or CSV, gzipped or not) also gives the RL prompts, split the same."""
    import gzip

    rows = [{"prompt": f"Is {i} even?", "chosen": "Yes.", "rejected": "No."} for i in range(20)]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "p.json").write_text(json.dumps({"data": rows}))
    (tmp_path / "p.csv").write_text("prompt,chosen,rejected\n" + "".join(f"{r['prompt']},Yes.,No.\n" for r in rows))
    (tmp_path / "p.csv.gz").write_bytes(gzip.compress((tmp_path / "p.csv").read_bytes()))
    for split in ("train", "test", "all"):
        expected = load_prompts(str(tmp_path / "p.jsonl"), split)
        assert expected and all(load_prompts(str(tmp_path / f), split) == expected
                                for f in ("p.json", "p.csv", "p.csv.gz"))
    dialogues = [{"chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "good"}],
                  "rejected": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "bad"}]},
                 {"chosen": "\n\nHuman: hi\n\nAssistant: hello", "rejected": "\n\nHuman: hi\n\nAssistant: bye"}]
    (tmp_path / "implicit.jsonl").write_text("".join(json.dumps(r) + "\n" for r in dialogues))
    assert load_prompts(str(tmp_path / "implicit.jsonl"), "all") == [[{"role": "user", "content": "q"}],
                                                                     "\n\nHuman: hi\n\nAssistant:"]  # as label splits
    (tmp_path / "q.csv").write_text("question\nIs 1 even?\n")
    with pytest.raises(InputError, match=r"q.csv, row 1, field 'prompt': missing field .*this row has question\)"):
        load_prompts(str(tmp_path / "q.csv"), "all")


def test_builtin_prompt_splits_do_not_overlap():
    train, test = load_prompts("builtin:capitals", "train"), load_prompts("builtin:capitals", "test")
    assert train and test and not set(train) & set(test)
    assert math.isclose(len(test) / (len(train) + len(test)), 0.3, abs_tol=0.02)
