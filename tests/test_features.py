"""FeatureExtractor: each text's hidden states at its last token and its zero-shot True/False log-odds, batched with
ragged lengths, equal to one unpadded forward per text (the batched path keeps logits only at the last positions)."""

import numpy as np
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
