"""FeatureExtractor: each text's hidden states at its last token and its zero-shot True/False log-odds, batched with
ragged lengths, equal to one unpadded forward per text (the batched path keeps logits only at the last positions)."""

import numpy as np
import pytest
import torch

from icm_rm.scoring.features import FeatureExtractor
from icm_rm.scoring.tokens import true_false_token_ids
from testkit.tiny_models import tiny_llama, tiny_tokenizer

TEXTS = ["Claim: Paris is in France.\nI think this claim is", "Claim: 2 + 2 = 5.\nI think this claim is",
         "Claim: The capital of Kenya is Nairobi, a city near the highlands.\nI think this claim is", "Claim: x",
         "Claim: Oslo.\nI think this claim is"]


def test_batched_features_equal_one_forward_per_text(tmp_path):
    tok = tiny_tokenizer()
    model = tiny_llama(tok, hidden_size=32, num_layers=2)
    ex = FeatureExtractor(model, tok, cache_dir=tmp_path, batch_size=4, show_progress=False)
    states, z = ex.get(TEXTS)
    t_ids, f_ids = true_false_token_ids(tok)
    for i, text in enumerate(TEXTS):
        ids = torch.tensor([ex._prefix + tok(text, add_special_tokens=False).input_ids])
        with torch.no_grad():
            out = model(input_ids=ids, output_hidden_states=True)
        ref = torch.stack([h[0, -1] for h in out.hidden_states]).numpy()
        np.testing.assert_allclose(states[i], ref, atol=1e-5)
        logp = torch.log_softmax(out.logits[0, -1].double(), -1)
        ref_z = float(torch.logsumexp(logp[t_ids], -1) - torch.logsumexp(logp[f_ids], -1))
        assert abs(z[i] - np.clip(ref_z, -ex.clamp, ex.clamp)) < 1e-5
    # a second extractor reads the same values back from the cache, with no forward
    again = FeatureExtractor(model, tok, cache_dir=tmp_path, show_progress=False)
    s2, z2 = again.get(TEXTS)
    assert again.forward_tokens == 0 and np.array_equal(s2, states) and np.array_equal(z2, z)


def _extractor(tok, model, cache, **kw):
    return FeatureExtractor(model, tok, cache_dir=cache, batch_size=2, show_progress=False, **kw)


MANY = [f"Claim: item {i} is {'x' * (i % 7)} here.\nI think this claim is" for i in range(23)]


def test_sharded_cache_is_content_addressed_and_read_back_without_forwards(tmp_path):
    tok = tiny_tokenizer()
    model = tiny_llama(tok, hidden_size=32, num_layers=2)
    row_mb = 3 * 32 * 4 / 2**20  # one text's states: 3 layers × 32 dims × float32
    ex = _extractor(tok, model, tmp_path / "a", shard_mb=4 * row_mb)  # 4 texts per shard
    states, z = ex.get(MANY)
    shards = sorted(p.name for p in ex.cache_dir.glob("*.npy"))
    assert len(shards) == 6 and len(list(ex.cache_dir.glob("*.json"))) == 6  # ⌈23 / 4⌉
    again = _extractor(tok, model, tmp_path / "a")
    s2, z2 = again.get(list(reversed(MANY)))
    assert again.forward_tokens == 0
    np.testing.assert_array_equal(s2, states[::-1])
    np.testing.assert_array_equal(z2, z[::-1])
    other = _extractor(tok, model, tmp_path / "b", shard_mb=4 * row_mb)  # same texts → same shard names
    other.get(MANY)
    assert sorted(p.name for p in other.cache_dir.glob("*.npy")) == shards
    # one layer, read alone, and an extractor that keeps only that layer: the same numbers
    l1, zl = again.layer(MANY, 1)
    np.testing.assert_array_equal(l1, states[:, 1])
    only = _extractor(tok, model, tmp_path / "c", layers=[1])
    np.testing.assert_array_equal(only.layer(MANY, 1)[0], l1)
    np.testing.assert_array_equal(only.log_odds(MANY), z)
    assert only.get(MANY)[0].shape == (len(MANY), 1, 32)


def test_extraction_resumes_after_a_kill_and_batches_by_length(tmp_path):
    tok = tiny_tokenizer()
    model = tiny_llama(tok, hidden_size=32, num_layers=2)
    row_mb = 3 * 32 * 4 / 2**20
    ref, zref = _extractor(tok, model, tmp_path / "ref").get(MANY)

    killed = _extractor(tok, model, tmp_path / "k", shard_mb=4 * row_mb)
    real, seen = killed._forward, []

    def dies_after_five_batches(texts):
        seen.append(texts)
        if len(seen) > 5:
            raise KeyboardInterrupt
        return real(texts)

    killed._forward = dies_after_five_batches
    with pytest.raises(KeyboardInterrupt):
        killed.get(MANY)
    lengths = [len(t) for b in seen for t in b]
    assert lengths == sorted(lengths)  # shortest texts first, batch after batch
    assert len(list(killed.cache_dir.glob("*.json"))) == 2  # two full shards of 4 survived; the third was lost
    resumed = _extractor(tok, model, tmp_path / "k", shard_mb=4 * row_mb)
    states, z = resumed.get(MANY)
    done = {t for b in seen[:4] for t in b}
    expect = sum(len(resumed._prefix) + len(tok(t, add_special_tokens=False).input_ids) for t in MANY if t not in done)
    assert resumed.forward_tokens == expect  # only the texts not yet in a shard were run
    np.testing.assert_allclose(states, ref, atol=1e-6)
    np.testing.assert_allclose(z, zref, atol=1e-6)
    assert resumed.tokens_per_s > 0


def test_a_corrupt_shard_is_dropped_and_recomputed(tmp_path):
    tok = tiny_tokenizer()
    model = tiny_llama(tok, hidden_size=32, num_layers=2)
    ex = _extractor(tok, model, tmp_path)
    states, _ = ex.get(MANY[:5])
    npy = next(ex.cache_dir.glob("*.npy"))
    npy.write_bytes(b"not an array")
    again = _extractor(tok, model, tmp_path)
    s2, _ = again.get(MANY[:5])
    assert again.forward_tokens > 0
    np.testing.assert_array_equal(s2, states)
