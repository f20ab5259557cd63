"""response_token_logprobs: the response tokens' log-probs equal those read off the full logits, while the LM head
runs only on the positions that predict a response token (not on the prompts before them)."""

import torch

from icm_rm.infra.lm import response_token_logprobs
from testkit.tiny_models import tiny_llama, tiny_tokenizer


def full_logits_logprobs(model, row: list[int], start: int) -> torch.Tensor:
    """The naive way: one row alone, logits at every position."""
    x = torch.tensor([row])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=x).logits[0, :-1].float(), -1)
    return logp[torch.arange(start - 1, len(row) - 1), x[0, start:]]


def test_equal_to_full_logits_and_head_sees_response_positions_only():
    tok = tiny_tokenizer()
    model = tiny_llama(tok)
    texts = [("What is the capital of France?\n", "Paris."), ("2 + 2 = ?\n", "It is 5, clearly."),
             ("Name a mammal that lives in the sea and breathes air.\n", "A whale.")]
    rows, starts = [], []
    for prompt, response in texts:
        p = tok(prompt, add_special_tokens=False).input_ids
        rows.append(p + tok(response, add_special_tokens=False).input_ids)
        starts.append(len(p))
    seen = []
    hook = model.get_output_embeddings().register_forward_hook(lambda m, i, o: seen.append(i[0].shape[1]))
    with torch.no_grad():
        got = response_token_logprobs(model, rows, starts, tok.pad_token_id)
    hook.remove()
    width = max(map(len, rows))
    assert seen == [width - (min(starts) - 1)] and seen[0] < width  # the prompt positions before are skipped
    for row, st, lp in zip(rows, starts, got):
        assert lp.shape == (len(row) - st,)
        assert torch.allclose(lp, full_logits_logprobs(model, row, st), atol=1e-5)
