"""Every adapter reads its real file from ../shared/data: exact counts (recomputed from the raw file or taken from
the folder READMEs), spot-checked fields, gold only in GoldLabels, keys blind to labels, balanced gold positions."""

from __future__ import annotations

import collections
import csv
import gzip
import json
import re
from pathlib import Path

import pytest

from icm_rm.data.answers import normalize_answer
from icm_rm.data.fgrlhf import COMPARISONS, fgrlhf_source
from icm_rm.data.gsm8k import SOLUTION_MODELS, gsm8k_solutions, read_gsm8k_problems
from icm_rm.data.hh_rlhf import hh_rlhf_source
from icm_rm.data.icm_paper import icm_gsm8k, icm_pair_source, icm_truthfulqa
from icm_rm.data.records import ClaimSet
from icm_rm.data.tasks import ALPACA
from icm_rm.data.truthfulqa import AnswerStats, truthfulqa_csv

ICM = "icm_unsupervised_elicitation"
META_KEYS = {"row", "model", "pair"}  # all a Claim's meta may carry: nothing label-derived


def raw_json(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))


def assert_label_blind(cs: ClaimSet) -> None:
    """Gold lives only in GoldLabels: claims carry no label field or label-derived meta."""
    assert "label" not in {f for f in cs.claims[0].__dataclass_fields__}
    assert all(set(c.meta) <= META_KEYS for c in cs.claims)
    assert set(cs.gold) == {c.id for c in cs.claims}
    assert len({c.id for c in cs.claims}) == len(cs.claims)


def a_better_share(cs: ClaimSet) -> float:
    return sum(cs.gold[f"{pid}:A>B"] for pid in cs.pairs) / len(cs.pairs)


# ------------------------------------------------------------------------------------------ ICM paper: TruthfulQA

@pytest.mark.parametrize("name, n, groups, n_true", [("train_truthfulqa.json", 2608, 652, 1194),
                                                      ("test_truthfulqa.json", 1000, 144, 432)])
def test_icm_truthfulqa_claims(shared_data, name, n, groups, n_true):
    path = shared_data / ICM / name
    cs = icm_truthfulqa(path)
    raw = raw_json(path)
    assert (len(cs.claims), len(cs.groups()), sum(cs.gold.values())) == (n, groups, n_true)  # README numbers
    assert_label_blind(cs)
    for claim, row in zip(cs.claims, raw):
        assert claim.group == str(row["consistency_id"])
        assert cs.gold[claim.id] == bool(row["label"])
        assert claim.text == f"Question: {row['question']}\nClaim: {row['choice']}\nI think this claim is"
    if name.startswith("train"):
        first = cs.claims[0]
        assert (first.id, first.group, first.key) == ("1", "400", "america has the most obese people among large "
                                                                  "countries")


def test_icm_truthfulqa_keys_ignore_labels(shared_data, tmp_path):
    raw = raw_json(shared_data / ICM / "test_truthfulqa.json")
    flipped = tmp_path / "test_truthfulqa.json"
    flipped.write_text(json.dumps([{**r, "label": 1 - r["label"]} for r in raw]))
    a, b = icm_truthfulqa(shared_data / ICM / "test_truthfulqa.json"), icm_truthfulqa(flipped)
    assert a.claims == b.claims and [c.key for c in a.claims] == [c.key for c in b.claims]
    assert all(a.gold[k] != b.gold[k] for k in a.gold)


@pytest.mark.parametrize("name, n_pairs", [("train_truthfulqa_preference.json", 3625),
                                           ("test_truthfulqa_preference.json", 2941)])
def test_icm_truthfulqa_preference_pairs(shared_data, name, n_pairs):
    path = shared_data / ICM / name
    source = icm_pair_source(path, "preference_type")
    truth = {}
    for row in raw_json(path):  # the better answer of each comparison, read from either ordering
        better, worse = (row["choice"], row["choice_2"]) if row["label"] else (row["choice_2"], row["choice"])
        assert truth.setdefault(str(row["consistency_id"]), (row["question"], better, worse)) == (row["question"],
                                                                                                  better, worse)
    assert len(source.pairs) == len(truth) == n_pairs
    assert source.skipped_invalid == 0 and {lp.subset for lp in source.pairs} == {"truthfulqa"}
    for lp in source.pairs:
        chosen = lp.pair.response_a if lp.a_better else lp.pair.response_b
        rejected = lp.pair.response_b if lp.a_better else lp.pair.response_a
        assert (lp.pair.prompt, chosen, rejected) == truth[lp.pair.id]
    # the file always lists the better answer first; our A/B placement must not
    share = sum(lp.a_better for lp in source.pairs) / n_pairs
    assert 0.46 < share < 0.54


# ------------------------------------------------------------------------------------------- ICM paper: GSM8K

def test_icm_gsm8k_claims(shared_data):
    path = shared_data / ICM / "test_gsm8k.json"
    cs, raw = icm_gsm8k(path), raw_json(shared_data / ICM / "test_gsm8k.json")
    assert (len(cs.claims), len(cs.groups())) == (2972, 743)
    assert sum(cs.gold.values()) == 1213 + 207  # README: sampled True + the 207 reference solutions
    assert collections.Counter(len(m) for m in cs.groups().values()) == {4: 743}
    assert_label_blind(cs)
    for claim, row in zip(cs.claims, raw):
        # the file's own `answer` runs past the line end in 8 rows and keeps a leading ': ' in 2; ours stops there
        assert claim.key == normalize_answer(row["answer"].split("\n")[0].lstrip(": "))
        assert claim.group == str(row["consistency_id"]) and cs.gold[claim.id] == bool(row["label"])
    first = cs.claims[0]
    assert (first.group, first.key) == ("334", "600")
    assert first.text == ("Question: Dan plants 3 rose bushes. Each rose bush has 25 roses. Each rose has 8 thorns. "
                          "How many thorns are there total?\nClaim: There are 3 rose bushes. 3 x 25 = 75. Each rose "
                          "has 8 thorns. 75 x 8 = 600. The answer is 600.\nFinal answer: 600\nI think this claim is")


def test_icm_gsm8k_keys_ignore_labels_and_reference_fields(shared_data, tmp_path):
    raw = raw_json(shared_data / ICM / "test_gsm8k.json")[:200]
    stripped = [{k: v for k, v in r.items() if k in ("question", "cot", "consistency_id")} | {"label": True}
                for r in raw]
    (tmp_path / "a.json").write_text(json.dumps(raw))
    (tmp_path / "b.json").write_text(json.dumps(stripped))
    assert icm_gsm8k(tmp_path / "a.json").claims == icm_gsm8k(tmp_path / "b.json").claims


# ------------------------------------------------------------------------------------------ ICM paper: Alpaca

def test_icm_alpaca_one_pair_per_comparison(shared_data):
    path = shared_data / ICM / "test_alpaca.json"
    raw = raw_json(path)
    source = icm_pair_source(path, "hh_type")
    originals = {str(r["consistency_id"]): r for r in raw if "candidate_label" in r}
    assert len(raw) == 934 and len(source.pairs) == len(originals) == 467
    for lp in source.pairs:
        row = originals[lp.pair.id]
        better = row["choice"] if row["label"] else row["choice_2"]
        assert (lp.pair.response_a if lp.a_better else lp.pair.response_b) == better
        assert lp.pair.prompt == row["question"] and lp.subset == "helpfulness"
    cs = source.claimset(ALPACA)
    assert (len(cs.claims), len(cs.pairs), len(cs.groups())) == (934, 467, 467)
    assert_label_blind(cs)
    assert 0.45 < a_better_share(cs) < 0.55
    assert all(cs.gold[f"{p}:A>B"] != cs.gold[f"{p}:B>A"] for p in cs.pairs)


def test_icm_alpaca_label_is_the_human_majority(shared_data):
    """Quirk check: in the original-order row, label = majority of candidate_label (True = `choice` preferred)."""
    for row in raw_json(shared_data / ICM / "test_alpaca.json"):
        if "candidate_label" in row:
            votes = sum(row["candidate_label"])
            assert row["label"] is (votes * 2 > len(row["candidate_label"]))
            assert row["confidence"] == max(votes, len(row["candidate_label"]) - votes) / len(row["candidate_label"])


# ------------------------------------------------------------------------------------------------ TruthfulQA CSV

def _simple_norm(s: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", s.lower()).split())


@pytest.mark.parametrize("rel, encoding, questions, claims, n_true",
                         [("truthfulqa/TruthfulQA.csv", "utf-8", 790, 6022, 2773),
                          ("truthfulqa/original_2021/TruthfulQA.csv", "utf-8-sig", 817, 6202, 2835)])
def test_truthfulqa_csv(shared_data, rel, encoding, questions, claims, n_true):
    path = shared_data / rel
    stats = AnswerStats()
    cs = truthfulqa_csv(path, stats=stats)
    expected_claims = expected_true = 0
    with open(path, encoding=encoding, newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:  # independent recount: correct/incorrect answer sets, contradictions removed
        correct = {_simple_norm(a) for a in row["Correct Answers"].split(";")} - {""}
        wrong = {_simple_norm(a) for a in row["Incorrect Answers"].split(";")} - {""}
        wrong |= {_simple_norm(row.get("Best Incorrect Answer", ""))} - {""} - correct
        expected_claims += len(correct ^ wrong)
        expected_true += len(correct - wrong)
    assert (len(rows), len(cs.claims), sum(cs.gold.values())) == (questions, expected_claims, expected_true)
    assert (len(cs.groups()), len(cs.claims), sum(cs.gold.values())) == (questions, claims, n_true)
    assert (stats.duplicates, stats.conflicting) == (3, 2)  # 3 repeated answers; "Unknown" listed both ways twice
    assert_label_blind(cs)
    watermelon = [c for c in cs.claims if c.group == "1"]
    assert {c.key: cs.gold[c.id] for c in watermelon}["the watermelon seeds pass through your digestive system"]
    assert not {c.key: cs.gold[c.id] for c in watermelon}["you grow watermelons in your stomach"]
    assert watermelon[0].text.startswith("Question: What happens to you if you eat watermelon seeds?\nClaim: ")
    # order within a question is a hash of the answer, so True claims are not listed first
    firsts = [cs.gold[cs.claims[m[0]].id] for m in cs.groups().values()]
    assert 0.3 < sum(firsts) / len(firsts) < 0.6


def test_truthfulqa_csv_holds_out_questions(shared_data):
    held_out = [r["question"] for r in raw_json(shared_data / ICM / "test_truthfulqa.json")]
    stats = AnswerStats()
    cs = truthfulqa_csv(shared_data / "truthfulqa/original_2021/TruthfulQA.csv", exclude_questions=held_out,
                        stats=stats)
    assert stats.excluded_questions == 144  # README: all 144 ICM test questions are in the 2021 file
    assert len(cs.groups()) == 817 - 144


# ----------------------------------------------------------------------------------------------------- GSM8K

def test_gsm8k_model_solutions(shared_data):
    cs = gsm8k_solutions(shared_data / "gsm8k/example_model_solutions.jsonl")
    assert (len(cs.claims), len(cs.groups())) == (5276, 1319)
    per_model = collections.Counter((c.meta["model"], cs.gold[c.id]) for c in cs.claims)
    assert per_model == {("6b_finetuning", True): 286, ("6b_finetuning", False): 1033,  # README table
                         ("6b_verification", True): 515, ("6b_verification", False): 804,
                         ("175b_finetuning", True): 458, ("175b_finetuning", False): 861,
                         ("175b_verification", True): 742, ("175b_verification", False): 577}
    assert_label_blind(cs)
    by_id = {c.id: c for c in cs.claims}
    assert [by_id[f"1:{m}"].key for m in SOLUTION_MODELS] == ["26", "224", "4", "18"]
    assert by_id["1:175b_verification"].text.endswith("= $<<2*9=18>>18 per day\nA: 18\nFinal answer: 18\n"
                                                      "I think this claim is")
    assert sum(c.key == "<no answer>" for c in cs.claims) == 11  # truncated generations without an "A:" line


@pytest.mark.parametrize("name, n, first_answer", [("train.jsonl", 7473, "72"), ("test.jsonl", 1319, "18")])
def test_gsm8k_reference_problems(shared_data, name, n, first_answer):
    problems = read_gsm8k_problems(shared_data / "gsm8k" / name)
    assert len(problems) == n and problems[0].final_answer == first_answer
    raw_last = [json.loads(line)["answer"].rsplit("####", 1)[1].strip()
                for line in (shared_data / "gsm8k" / name).read_text().splitlines()]
    assert [p.final_answer for p in problems] == raw_last
    assert problems[0].id == "1" and problems[0].solution.endswith(f"#### {first_answer}")


# --------------------------------------------------------------------------------------------------- HH-RLHF

@pytest.mark.parametrize("subset, rows, kept", [("helpful-base", 2354, 2348), ("harmless-base", 2312, 2308)])
def test_hh_rlhf_split_is_lossless(shared_data, subset, rows, kept):
    path = shared_data / "hh_rlhf" / subset / "test.jsonl.gz"
    raw = [json.loads(line) for line in gzip.open(path, "rt", encoding="utf-8")]
    source = hh_rlhf_source(path)
    assert len(raw) == rows and len(source.pairs) == kept and source.skipped_invalid == rows - kept
    for lp in source.pairs:
        row = raw[int(lp.pair.id) - 1]
        chosen = lp.pair.response_a if lp.a_better else lp.pair.response_b
        rejected = lp.pair.response_b if lp.a_better else lp.pair.response_a
        assert lp.pair.prompt + chosen == row["chosen"] and lp.pair.prompt + rejected == row["rejected"]
        assert lp.pair.prompt.endswith("\n\nAssistant:") and lp.subset == subset
    multi_turn = [lp for lp in source.pairs if lp.pair.prompt.count("\n\nHuman:") > 1]
    assert len(multi_turn) > len(source.pairs) // 3
    assert 0.45 < sum(lp.a_better for lp in source.pairs) / kept < 0.55


def test_hh_rlhf_turn_markers_inside_a_response(shared_data):
    """helpful-base row 1167: the chosen reply itself contains '\\n\\nAssistant:'; the prompt must stop before it."""
    source = hh_rlhf_source(shared_data / "hh_rlhf/helpful-base/test.jsonl.gz")
    lp = next(lp for lp in source.pairs if lp.pair.id == "1167")
    chosen = lp.pair.response_a if lp.a_better else lp.pair.response_b
    assert lp.pair.prompt == "\n\nHuman: How much do solar panels cost?\n\nAssistant:"
    assert chosen.startswith(" Umm. Just a second...\n\nAssistant: A solar panel should cost")


def test_hh_rlhf_folder_reads_both_subsets(shared_data):
    source = hh_rlhf_source(shared_data / "hh_rlhf")
    assert len(source.pairs) == 2348 + 2308 and source.skipped_invalid == 10
    assert collections.Counter(lp.subset for lp in source.pairs) == {"helpful-base": 2348, "harmless-base": 2308}
    assert source.pairs[0].pair.id == "harmless-base:1"


# ------------------------------------------------------------------------------------------------- FG-RLHF

def test_fgrlhf_pairs(shared_data):
    path = shared_data / "fine_grained_rlhf_qa_feedback/dev_feedback.json"
    raw = raw_json(path)
    source = fgrlhf_source(path)
    verdicts = collections.Counter(v for r in raw for v in r["preference"])
    assert (verdicts[1], verdicts[2], verdicts[0]) == (1577, 1039, 384)  # README
    assert (len(source.pairs), source.skipped_ties, source.skipped_invalid) == (2616, 384, 0)
    for lp in source.pairs:
        row_number, kind = lp.pair.id.split(":")
        row = raw[int(row_number) - 1]
        i, j = int(kind[0]), int(kind[2])
        verdict = row["preference"][COMPARISONS.index((i, j))]
        better = row[f"prediction {i}"] if verdict == 1 else row[f"prediction {j}"]
        assert (lp.pair.response_a if lp.a_better else lp.pair.response_b) == better
        assert lp.pair.prompt == row["question"] and lp.subset == kind
    assert 0.46 < sum(lp.a_better for lp in source.pairs) / 2616 < 0.54  # the file itself is 60 % "first"
    with_passages = fgrlhf_source(path, include_passages=True)
    assert with_passages.pairs[0].pair.prompt.startswith("Bloom (Troye Sivan album): Bloom (Troye Sivan album)")
    assert with_passages.pairs[0].pair.prompt.endswith("\n\nQuestion: When does bloom by troye sivan come out?")
