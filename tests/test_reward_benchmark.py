"""benchmarks/rm_quality.py end to end on tiny inputs: a fake label run over a built-in task, three tiny RMs."""

from __future__ import annotations

import json
import random
import sys
from dataclasses import replace
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def label_run(tmp_path) -> Path:
    """preferences_gold.jsonl from the built-in capitals train split; preferences.jsonl = gold with 1 in 5 flipped."""
    from icm_rm.data.builtin import builtin_claimset
    from icm_rm.data.preferences import PreferenceExample, write_preferences_jsonl

    cs = builtin_claimset("capitals", form="pairs", split="train", n_groups=30)
    gold = []
    for pid, pair in cs.pairs.items():
        a = cs.gold[f"{pid}:A>B"]
        gold.append(PreferenceExample(pid, pair.prompt, pair.response_a if a else pair.response_b,
                                      pair.response_b if a else pair.response_a))
    rng = random.Random(0)
    icm = [replace(e, chosen=e.rejected, rejected=e.chosen) if rng.random() < 0.2 else e for e in gold]
    run = tmp_path / "label"
    write_preferences_jsonl(run / "preferences_gold.jsonl", gold)
    write_preferences_jsonl(run / "preferences.jsonl", [replace(e, margin=1.0) for e in icm])
    (run / "config.yaml").write_text("data_format: builtin\ntask: capitals\nform: pairs\n")
    report = {"model": "tiny", "scorer": "probe", "accuracy": {"claim": 0.8, "pair": 0.8},
              "strongest_baseline": {"name": "zero_shot", "accuracy": 0.3}, "baselines": {"zero_shot": {"pair": 0.3}},
              "warnings": [{"code": "verdict_disagrees", "message": "labels disagree with the zero-shot verdicts"}]}
    (run / "report.json").write_text(json.dumps(report))
    return run


def test_rm_quality_runs_end_to_end_on_tiny_inputs(label_run, tiny_model_dir, shared_data, tmp_path, capsys):
    import torch

    sys.path.insert(0, str(REPO / "benchmarks"))
    import rm_quality

    results = tmp_path / "rm_quality.json"
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rc = rm_quality.main(["--label_run", str(label_run), "--model", str(tiny_model_dir), "--use_lora", "true",
                              "--trainer", '{"learning_rate": 0.01, "max_steps": 3, "per_device_train_batch_size": 8,'
                                           ' "activation_checkpointing": false, "report_to": []}',
                              "--eval_limit", "4", "--shared_data", str(shared_data), "--shared_sets",
                              '["hh_rlhf/helpful-base/test.jsonl.gz"]', "--max_length", "4096",
                              "--output_dir", str(tmp_path / "bench"), "--results", str(results)])
    finally:
        torch.set_num_threads(n)
    assert rc == 0
    doc = json.loads(results.read_text())
    assert doc["data"]["n_pairs"] == 30 and doc["data"]["n_train"] + doc["data"]["n_test"] == 30
    assert doc["data"]["icm_label_accuracy_train"] < 1.0
    assert doc["eval"]["datasets"] == ["test_gold", "builtin_test", "helpful-base/test"]
    assert sorted(r["labels"] for r in doc["eval"]["results"]) == sorted(["icm", "gold", "random"] * 3)
    assert all(r["n"] == 4 for r in doc["eval"]["results"])
    assert doc["data"]["label_report"]["warnings"][0]["code"] == "verdict_disagrees"
    assert doc["data"]["label_report"]["accuracy"] == {"claim": 0.8, "pair": 0.8}
    out = capsys.readouterr().out
    assert "| ICM labels | gold labels | random labels |" in out
    assert "label run (tiny, probe): ICM 80.0% vs strongest baseline zero_shot 30.0%" in out
    assert "label run WARNING: labels disagree with the zero-shot verdicts" in out


def test_rm_quality_evaluates_a_test_split_source_on_its_unlabeled_pairs_only(tmp_path, capsys):
    """A label run over a file with no test file of its own (HH-RLHF's shared copy is its test split): the RMs are
    scored on that file's pairs whose prompt the labeler never saw, and the file itself is dropped from the shared
    sets, whose first pairs would include the labeled ones."""
    from icm_rm.data.preferences import PreferenceExample, write_preferences_jsonl

    sys.path.insert(0, str(REPO / "benchmarks"))
    import rm_quality

    shared = tmp_path / "shared"
    source = shared / "prefs" / "test.jsonl"
    pairs = [PreferenceExample(f"p{i}", f"question {i}", f"good {i}", f"bad {i}") for i in range(6)]
    write_preferences_jsonl(source, pairs)
    run = tmp_path / "label"
    write_preferences_jsonl(run / "preferences_gold.jsonl", [pairs[1], pairs[4]])
    write_preferences_jsonl(run / "preferences.jsonl", [pairs[1], pairs[4]])
    (run / "config.yaml").write_text(f"data_format: trl\ndata_path: {source}\n")
    rest = rm_quality.unlabeled_source_set(run, [pairs[1], pairs[4]], shared, None)
    assert [e.prompt for e in rest] == ["question 0", "question 2", "question 3", "question 5"]
    first_two = rm_quality.unlabeled_source_set(run, [pairs[1]], shared, 2)
    assert [e.prompt for e in first_two] == ["question 0", "question 2"]
    cfg = rm_quality.RMQualityConfig(label_run=str(run), shared_data=str(shared),
                                     shared_sets=["prefs/test.jsonl", "missing.jsonl"], eval_limit=None)
    sets = rm_quality.eval_sets(cfg, tmp_path / "test_gold.jsonl", tmp_path / "out")
    rest = tmp_path / "out" / "data" / "source_unlabeled.jsonl"
    assert sets == [f"{tmp_path / 'test_gold.jsonl'}:trl", f"{rest}:trl"]
    assert "is the label run's source; evaluating on its 4 unlabeled pairs instead" in capsys.readouterr().err
    (run / "config.yaml").write_text("data_format: builtin\ntask: capitals\n")
    assert rm_quality.unlabeled_source_set(run, [pairs[1]], shared, None) is None


def test_rm_quality_never_scores_on_the_file_it_labeled(tmp_path):
    """ICM Alpaca's held-out file is the shared test_alpaca.json: a label run over that file gets its unlabeled rest,
    not the file itself; a run over the TruthfulQA preference train file keeps the separate test file."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    import rm_quality

    shared, run = tmp_path / "shared", tmp_path / "label"
    run.mkdir()
    alpaca = shared / rm_quality.FORMAT_TEST_FILES["icm_alpaca"]
    (run / "config.yaml").write_text(f"data_format: icm_alpaca\ndata_path: {alpaca}\n")
    assert rm_quality.format_test_file(run, shared) is None
    train = shared / "icm_unsupervised_elicitation" / "train_truthfulqa_preference.json"
    (run / "config.yaml").write_text(f"data_format: icm_truthfulqa_preference\ndata_path: {train}\n")
    assert rm_quality.format_test_file(run, shared) == str(shared / rm_quality.FORMAT_TEST_FILES[
        "icm_truthfulqa_preference"])
    assert rm_quality.unlabeled_source_set(run, [], shared, None) is None
