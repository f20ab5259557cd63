"""ResponseLikelihood: mean response log-prob given the prompt, the same whether texts share a padded batch or run
alone (its batches are bounded by logits memory, rows × tokens × vocab, as well as by row count)."""

import torch

from icm_rm.scoring.likelihood import ResponseLikelihood
from icm_rm.scoring.tokens import prefix_ids
from testkit.tiny_models import tiny_llama, tiny_tokenizer

ITEMS = [("What is the capital of France?", "Paris."), ("2 + 2 = ?", "It is 5, clearly, as everyone knows."),
         ("Name a mammal.", "A whale is a mammal that lives in the sea and breathes air."), ("Hi", "")]


def reference(model, tok, prompt: str, response: str, reduce: str = "mean") -> float:
    p = prefix_ids(tok) + tok(prompt + "\n", add_special_tokens=False).input_ids
    r = tok(response, add_special_tokens=False).input_ids or [tok.pad_token_id]
    x = torch.tensor([p + r])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=x).logits[0, :-1].float(), -1)
    return float(getattr(logp[torch.arange(len(p) - 1, x.shape[1] - 1), x[0, len(p):]], reduce)())


def test_mean_logprobs_equal_alone_and_batched():
    tok = tiny_tokenizer()
    model = tiny_llama(tok)
    batched = ResponseLikelihood(model, tok).mean_logprobs(ITEMS)
    one_by_one = ResponseLikelihood(model, tok, max_logits_mb=1e-9).mean_logprobs(ITEMS)  # one row per forward
    for (prompt, response), a, b in zip(ITEMS, batched, one_by_one):
        ref = reference(model, tok, prompt, response)
        assert abs(a - ref) < 1e-5 and abs(b - ref) < 1e-5


def test_summed_logprobs_and_token_counts_from_the_same_forward():
    tok = tiny_tokenizer()
    model = tiny_llama(tok)
    lik = ResponseLikelihood(model, tok)
    means = lik.mean_logprobs(ITEMS)
    tokens = lik.forward_tokens
    summed = lik.summed_logprobs(ITEMS)
    assert lik.forward_tokens == tokens  # served from the cache: no second forward
    for (prompt, response), mean, (total, n) in zip(ITEMS, means, summed):
        assert n == max(1, len(tok(response, add_special_tokens=False).input_ids))  # an empty reply scores one pad
        assert abs(total - reference(model, tok, prompt, response, "sum")) < 1e-4
        assert abs(total / n - mean) < 1e-5


def test_progress_bar_only_for_more_than_one_batch(capsys):
    tok = tiny_tokenizer()
    model = tiny_llama(tok)
    ResponseLikelihood(model, tok, batch_size=2).mean_logprobs(ITEMS)
    assert "likelihood" in capsys.readouterr().err
    ResponseLikelihood(model, tok, batch_size=2, show_progress=False).mean_logprobs(ITEMS)
    ResponseLikelihood(model, tok, batch_size=4).mean_logprobs(ITEMS)
    assert "likelihood" not in capsys.readouterr().err
