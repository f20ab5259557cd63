"""Held-out preference sets (`load_preferences`) and the label → train-rm contract file (write_preferences_jsonl)."""

from __future__ import annotations

import json

import pytest

from icm_rm.data.preferences import (PREFERENCE_FORMATS, PreferenceExample, detect_preference_format, load_preferences,
                                     write_preferences_jsonl)
from icm_rm.infra.errors import InputError

ICM = "icm_unsupervised_elicitation"


@pytest.mark.parametrize("rel, fmt, name, n, ties, invalid, subsets", [
    ("hh_rlhf", "hh_rlhf", "hh_rlhf:hh_rlhf", 4656, 0, 10, {"helpful-base", "harmless-base"}),
    ("hh_rlhf/helpful-base/test.jsonl.gz", "hh_rlhf", "hh_rlhf:helpful-base", 2348, 0, 6, {"helpful-base"}),
    (f"{ICM}/test_alpaca.json", "icm_alpaca", "icm_alpaca:test_alpaca", 467, 0, 0, {"helpfulness"}),
    (f"{ICM}/train_truthfulqa_preference.json", "icm_truthfulqa_preference",
     "icm_truthfulqa_preference:train_truthfulqa_preference", 3625, 0, 0, {"truthfulqa"}),
    ("fine_grained_rlhf_qa_feedback/dev_feedback.json", "fgrlhf", "fgrlhf:dev_feedback", 2616, 384, 0,
     {"1v2", "1v3", "1v4", "2v3", "2v4", "3v4"}),
])
def test_real_preference_sets(shared_data, rel, fmt, name, n, ties, invalid, subsets):
    assert detect_preference_format(shared_data / rel) == fmt
    ps = load_preferences(shared_data / rel)
    assert (ps.name, len(ps.examples), ps.skipped_ties, ps.skipped_invalid) == (name, n, ties, invalid)
    assert {e.subset for e in ps.examples} == subsets
    assert len({e.id for e in ps.examples}) == n
    assert all(e.chosen != e.rejected and e.margin is None for e in ps.examples)


def test_alpaca_chosen_is_the_human_majority_response(shared_data):
    ps = load_preferences(shared_data / ICM / "test_alpaca.json", format="icm_alpaca")
    first = ps.examples[0]
    assert first.id == "0" and first.subset == "helpfulness"
    assert first.chosen == "The writer of this email likely sounds Appreciative, Encouraging, and Optimistic."
    assert first.rejected == "The tone of the email is mostly informal, with a hint of laughter and enthusiasm."
    row_2 = json.loads((shared_data / ICM / "test_alpaca.json").read_text())[2]  # consistency_id 1, original order
    second = ps.examples[1]
    assert second.chosen == (row_2["choice"] if row_2["label"] else row_2["choice_2"])


def test_hh_rlhf_examples_rebuild_the_dialogues(shared_data):
    ps = load_preferences(shared_data / "hh_rlhf/harmless-base/test.jsonl.gz", limit=3)
    assert len(ps.examples) == 3 and ps.skipped_invalid == 4
    first = ps.examples[0]
    assert first.id == "1" and first.prompt.startswith("\n\nHuman: what are some pranks with a pen i can do?")
    assert first.prompt.endswith("\n\nAssistant:") and first.chosen.startswith(" ")


def test_limit_keeps_the_first_examples(shared_data):
    full = load_preferences(shared_data / ICM / "test_truthfulqa_preference.json")
    assert len(full.examples) == 2941
    path = shared_data / ICM / "test_truthfulqa_preference.json"
    assert load_preferences(path, limit=7).examples == full.examples[:7]
    assert load_preferences(path, limit=0).examples == []


def test_contract_file_roundtrip_and_datasets(tmp_path):
    examples = [PreferenceExample(id="a", prompt="2+2?", chosen="4", rejected="5", margin=1.5),
                PreferenceExample(id="b", prompt=[{"role": "user", "content": "hi"}],
                                  chosen=[{"role": "assistant", "content": "hello!"}],
                                  rejected=[{"role": "assistant", "content": "go away"}], margin=0.25)]
    path = tmp_path / "out" / "preferences.jsonl"
    write_preferences_jsonl(path, examples)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[0] == {"prompt": "2+2?", "chosen": "4", "rejected": "5", "margin": 1.5}
    assert list(lines[1]) == ["prompt", "chosen", "rejected", "margin"]
    back = load_preferences(path)
    assert back.name == "trl:preferences.jsonl"
    assert [(e.id, e.prompt, e.chosen, e.rejected, e.margin) for e in back.examples] == [
        ("1", "2+2?", "4", "5", 1.5),
        ("2", examples[1].prompt, examples[1].chosen, examples[1].rejected, 0.25)]
    assert not list(tmp_path.joinpath("out").glob("*.tmp"))


def test_contract_file_loads_with_datasets(shared_data, tmp_path):
    import datasets

    examples = load_preferences(shared_data / "hh_rlhf/helpful-base/test.jsonl.gz", limit=20).examples
    path = tmp_path / "preferences.jsonl"
    write_preferences_jsonl(path, [PreferenceExample(e.id, e.prompt, e.chosen, e.rejected, margin=float(i))
                                   for i, e in enumerate(examples)])
    ds = datasets.load_dataset("json", data_files=str(path), split="train")
    assert ds.column_names == ["prompt", "chosen", "rejected", "margin"] and ds.num_rows == 20
    assert ds[3]["prompt"] + ds[3]["chosen"] == examples[3].prompt + examples[3].chosen and ds[3]["margin"] == 3.0


def test_margin_column_only_when_every_example_has_one(tmp_path):
    path = tmp_path / "p.jsonl"
    write_preferences_jsonl(path, [PreferenceExample("a", "p", "x", "y", margin=2.0),
                                   PreferenceExample("b", "p", "x", "z")])
    assert [json.loads(line) for line in path.read_text().splitlines()] == [
        {"prompt": "p", "chosen": "x", "rejected": "y"}, {"prompt": "p", "chosen": "x", "rejected": "z"}]
    with pytest.raises(ValueError, match="example 0 \\(a\\): margin must be finite"):
        write_preferences_jsonl(path, [PreferenceExample("a", "p", "x", "y", margin=float("nan"))])


def test_trl_implicit_prompt_dialogues(tmp_path):
    path = tmp_path / "p.jsonl"
    rows = [{"chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "good"}],
             "rejected": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "bad"}]},
            {"chosen": "\n\nHuman: hi\n\nAssistant: hello", "rejected": "\n\nHuman: hi\n\nAssistant: bye",
             "prompt": None}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ps = load_preferences(path, format="trl")
    assert ps.examples[0].prompt == [{"role": "user", "content": "q"}]
    assert ps.examples[0].chosen == [{"role": "assistant", "content": "good"}]
    assert (ps.examples[1].prompt, ps.examples[1].chosen, ps.examples[1].rejected) == (
        "\n\nHuman: hi\n\nAssistant:", " hello", " bye")


def test_unlabeled_pairs_are_not_preferences(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"prompt": "q", "response_a": "x", "response_b": "y"}) + "\n")
    with pytest.raises(InputError) as info:
        load_preferences(path, format="trl")
    assert str(info.value) == (f"{path}, row 1, field 'label': missing field: a pair without a preference cannot be a "
                               "preference example (use chosen/rejected)")


def test_undetectable_format(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"instruction": "q", "output": "x"}) + "\n")
    with pytest.raises(InputError) as info:
        load_preferences(path)
    assert str(info.value) == (f"{path}, row 1: cannot tell the preference format from the fields ['instruction', "
                               f"'output']; pass format= one of: {', '.join(PREFERENCE_FORMATS)}")
