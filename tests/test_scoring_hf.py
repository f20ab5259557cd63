"""HFScorer (KV-cache prefix sharing, batched leaves) against NaiveScorer (one forward per query), on tiny models."""

import random

import numpy as np
import pytest
import torch

from icm_rm.data.records import Claim
from icm_rm.infra.errors import UserError
from icm_rm.scoring.hf import HFScorer, plan_batches
from icm_rm.scoring.naive import NaiveScorer
from icm_rm.scoring.order import capped_orders
from icm_rm.scoring.tokens import TokenCache, prefix_ids, true_false_token_ids

WORDS = "the capital of france is paris spain rome larger answer good bad helpful response claim".split()


def make_pool(n: int, seed: int, unlabeled: float = 0.25):
    """n ragged claims in groups of 1–3, labels mixed True/False/None."""
    rng = random.Random(seed)
    claims, g = [], 0
    while len(claims) < n:
        for _ in range(min(rng.randint(1, 3), n - len(claims))):
            words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 14)))
            claims.append(Claim(id=f"c{len(claims)}", group=f"g{g}", key=str(rng.randint(0, 1)),
                                text=f"Claim: {words}.\nI think this claim is"))
        g += 1
    labels = [None if rng.random() < unlabeled else rng.random() < 0.5 for _ in range(n)]
    return claims, labels, rng


def assert_same(fast, naive, claims, labels, queries, tol=1e-4):
    a = fast.loo_scores(claims, labels, queries)
    b = naive.loo_scores(claims, labels, queries)
    assert a.shape == (len(queries),)
    np.testing.assert_allclose(a, b, atol=tol, rtol=0)
    return a


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def naive(tiny_model, tiny_tok):
    return NaiveScorer(tiny_model, tiny_tok)


def test_true_false_token_ids_are_every_true_and_false_token(tiny_tok):
    t_ids, f_ids = true_false_token_ids(tiny_tok)
    (true_id,) = tiny_tok(" True", add_special_tokens=False).input_ids
    (false_id,) = tiny_tok(" False", add_special_tokens=False).input_ids
    assert true_id in t_ids and false_id in f_ids
    assert not set(t_ids) & set(f_ids)
    assert {tiny_tok.decode([i]).strip().lower() for i in t_ids} == {"true"}
    assert {tiny_tok.decode([i]).strip().lower() for i in f_ids} == {"false"}
    texts = [tiny_tok.decode([i]).strip().lower() for i in range(len(tiny_tok))]
    assert len(t_ids) == texts.count("true") and len(f_ids) == texts.count("false")


def test_tokenizer_without_true_false_is_a_user_error():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.WordLevel({"yes": 0, "no": 1, "[UNK]": 2}, unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="[UNK]")
    tok.name_or_path = "yes-no-tokenizer"
    with pytest.raises(UserError, match="yes-no-tokenizer.*'true'"):
        true_false_token_ids(tok)


def bos_tokenizer():
    """The tiny tokenizer, made to add <s> at the start (and </s> at the end, which the prefix must drop)."""
    from tokenizers.processors import TemplateProcessing

    from testkit.tiny_models import tiny_tokenizer

    tok = tiny_tokenizer()
    tok.backend_tokenizer.post_processor = TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", tok.bos_token_id), ("</s>", tok.eos_token_id)])
    return tok


def test_prefix_is_bos_only_when_the_tokenizer_adds_one(tiny_tok):
    assert prefix_ids(tiny_tok) == []
    tok = bos_tokenizer()
    assert prefix_ids(tok) == [tok.bos_token_id]
    cache = TokenCache(tok)
    ctx = cache.context("Claim: x.\nI think this claim is", ["Claim: a."], [True])
    demo = tok("Claim: a. True\n\n", add_special_tokens=False).input_ids
    query = tok("Claim: x.\nI think this claim is", add_special_tokens=False).input_ids
    assert ctx == [tok.bos_token_id] + demo + query


@pytest.mark.parametrize("n", range(1, 34))
def test_fast_equals_naive(n, tiny_model, tiny_tok, naive):
    claims, labels, rng = make_pool(n, seed=n)
    fast = HFScorer(tiny_model, tiny_tok)
    assert_same(fast, naive, claims, labels, list(range(n)))
    subset = sorted(rng.sample(range(n), max(1, n // 3)))  # a query subset: the recursion keeps all labeled items
    assert_same(HFScorer(tiny_model, tiny_tok), naive, claims, labels, subset)


@pytest.mark.parametrize("kw", [dict(kv_budget_mb=1e-6), dict(kv_budget_mb=1e9, block_items=64), dict(block_items=3),
                                dict(forward_overhead_tokens=0), dict(forward_overhead_tokens=1e9)],
                         ids=["depth-first", "breadth-first", "small-blocks", "no-overhead", "one-batch-per-level"])
def test_fast_equals_naive_across_strategies(kw, tiny_model, tiny_tok, naive):
    claims, labels, _ = make_pool(27, seed=7)
    fast = HFScorer(tiny_model, tiny_tok, **kw)
    assert_same(fast, naive, claims, labels, list(range(27)))


def test_kv_budget_defaults_to_1024_mib_on_cpu(tiny_model, tiny_tok):
    assert HFScorer(tiny_model, tiny_tok).kv_budget_mb == 1024
    assert HFScorer(tiny_model, tiny_tok, kv_budget_mb=8).kv_budget_mb == 8
    assert HFScorer(tiny_model, tiny_tok).block_items == 32
    assert HFScorer(tiny_model, tiny_tok, block_items=5).block_items == 5


def test_accelerator_defaults_uncap_the_leaf_blocks(tiny_model, tiny_tok):
    """Off the CPU a forward's fixed cost dwarfs a token's: no block cap (the KV budget bounds a block), pricier
    extra forwards. A meta-device copy of the tiny model stands in for an accelerator."""
    with torch.device("meta"):
        model = type(tiny_model)(tiny_model.config)
    scorer = HFScorer(model, tiny_tok)
    assert scorer.block_items > 10**6 and scorer.forward_overhead_tokens == 4096


def test_fast_equals_naive_with_bos_prefix(tiny_model):
    tok = bos_tokenizer()
    claims, labels, _ = make_pool(12, seed=3)
    assert_same(HFScorer(tiny_model, tok), NaiveScorer(tiny_model, tok), claims, labels, list(range(12)))


def test_capped_contexts(tiny_model, tiny_tok):
    claims, labels, _ = make_pool(19, seed=11, unlabeled=0.1)
    queries = list(range(19))
    fast = HFScorer(tiny_model, tiny_tok, max_demos=3)
    capped = assert_same(fast, NaiveScorer(tiny_model, tiny_tok, max_demos=3), claims, labels, queries)
    full = NaiveScorer(tiny_model, tiny_tok).loo_scores(claims, labels, queries)
    assert np.abs(capped - full).max() > 1e-2  # the cap changed the contexts
    groups = [c.group for c in claims]
    assert all(len(d) == 3 for d in capped_orders(groups, labels, queries, 3).values())
    assert fast.stats.forward_calls < len(queries)  # batched


def tiny_gemma3(tok, sliding_window: int):
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    cfg = Gemma3TextConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                           num_attention_heads=4, num_key_value_heads=2, head_dim=8, sliding_window=sliding_window,
                           layer_types=["sliding_attention", "full_attention", "sliding_attention"],
                           max_position_embeddings=4096, pad_token_id=tok.pad_token_id,
                           bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    model = Gemma3ForCausalLM(cfg)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.2)
    return model.eval()


def test_sliding_window_model_is_exact_past_the_window(tiny_tok):
    gemma = tiny_gemma3(tiny_tok, sliding_window=16)
    claims, labels, _ = make_pool(17, seed=5)
    queries = list(range(17))
    naive = NaiveScorer(gemma, tiny_tok)
    labeled = [j for j in queries if labels[j] is not None]
    ctx_len = max(len(naive.context_ids(claims, labels, q, [j for j in labeled if j != q])) for q in queries)
    assert ctx_len > 8 * 16  # contexts cross the window many times over
    scores = assert_same(HFScorer(gemma, tiny_tok), naive, claims, labels, queries)
    assert_same(HFScorer(gemma, tiny_tok, kv_budget_mb=1e-6), naive, claims, labels, queries)
    unwindowed = NaiveScorer(tiny_gemma3(tiny_tok, sliding_window=4096), tiny_tok)
    assert np.abs(unwindowed.loo_scores(claims, labels, queries) - scores).max() > 1e-2  # the window matters


def test_clamp(tiny_model, tiny_tok, naive):
    claims, labels, _ = make_pool(9, seed=2)
    raw = naive.loo_scores(claims, labels, list(range(9)))
    bound = float(np.median(np.abs(raw)))
    got = HFScorer(tiny_model, tiny_tok, clamp=bound).loo_scores(claims, labels, list(range(9)))
    np.testing.assert_allclose(got, np.clip(raw, -bound, bound), atol=1e-4, rtol=0)
    assert (np.abs(got) == bound).sum() >= 4


def test_score_cache_hits_are_identical_and_free(tiny_model, tiny_tok, naive):
    claims, labels, _ = make_pool(14, seed=4, unlabeled=0.0)
    queries = list(range(14))
    fast = HFScorer(tiny_model, tiny_tok)
    first = fast.loo_scores(claims, labels, queries)
    tokens, calls = fast.stats.forward_tokens, fast.stats.forward_calls
    again = fast.loo_scores(claims, labels, queries)
    np.testing.assert_array_equal(first, again)
    assert (fast.stats.forward_tokens, fast.stats.forward_calls, fast.stats.cache_hits) == (tokens, calls, 14)
    flipped = list(labels)
    flipped[5] = not flipped[5]
    assert_same(fast, naive, claims, flipped, queries)
    assert fast.stats.cache_hits == 15  # only claim 5's own context (which never holds its label) is unchanged
    fast.loo_scores(claims, labels, queries)  # flip back: every context seen before
    assert fast.stats.cache_hits == 29 and fast.stats.queries == 56


def test_fast_runs_fewer_tokens_than_naive(tiny_model, tiny_tok):
    for n in (8, 16, 32):
        claims, labels, _ = make_pool(n, seed=100 + n, unlabeled=0.0)
        fast, slow = HFScorer(tiny_model, tiny_tok), NaiveScorer(tiny_model, tiny_tok)
        assert_same(fast, slow, claims, labels, list(range(n)))
        assert fast.stats.forward_tokens < slow.stats.forward_tokens
        assert fast.stats.forward_calls < slow.stats.forward_calls
    assert slow.stats.forward_tokens > 3 * fast.stats.forward_tokens  # n = 32


def test_zero_shot_is_batched_and_exact(tiny_model, tiny_tok, naive):
    claims, _, _ = make_pool(21, seed=9)
    fast = HFScorer(tiny_model, tiny_tok, batch_tokens=200)
    np.testing.assert_allclose(fast.zero_shot(claims), naive.zero_shot(claims), atol=1e-4, rtol=0)
    assert 1 < fast.stats.forward_calls < len(claims)


def test_context_longer_than_the_model_is_a_user_error(tiny_tok):
    from testkit.tiny_models import tiny_llama

    short = tiny_llama(tiny_tok, max_position_embeddings=64)
    claims, labels, _ = make_pool(12, seed=1, unlabeled=0.0)
    with pytest.raises(UserError, match=r"claim 'c\d+'.*max_demos"):
        HFScorer(short, tiny_tok).loo_scores(claims, labels, list(range(12)))
    with pytest.raises(UserError, match="max_demos"):
        NaiveScorer(short, tiny_tok).loo_scores(claims, labels, list(range(12)))


def test_bfloat16_close_to_naive(tiny_tok):
    from testkit.tiny_models import tiny_llama

    model = tiny_llama(tiny_tok).to(torch.bfloat16)
    claims, labels, _ = make_pool(10, seed=8)
    fast, slow = HFScorer(model, tiny_tok), NaiveScorer(model, tiny_tok)
    a, b = fast.loo_scores(claims, labels, list(range(10))), slow.loo_scores(claims, labels, list(range(10)))
    assert np.abs(a - b).max() < 0.25 and np.corrcoef(a, b)[0, 1] > 0.99


def test_from_pretrained_local_dir(tiny_model_dir, tmp_path):
    claims, labels, _ = make_pool(6, seed=6)
    fast = HFScorer.from_pretrained(tiny_model_dir, device="cpu")
    slow = NaiveScorer.from_pretrained(str(tiny_model_dir), device="cpu")
    assert_same(fast, slow, claims, labels, list(range(6)))
    with pytest.raises(UserError):
        HFScorer.from_pretrained(tmp_path / "missing")


def test_plan_batches():
    assert plan_batches([5, 100, 4, 6], overhead_tokens=10) == [[2, 0, 3], [1]]
    assert plan_batches([5, 100, 4, 6], overhead_tokens=1000) == [[2, 0, 3, 1]]
    assert plan_batches([3, 1, 2], overhead_tokens=0) == [[1], [2], [0]]
    assert plan_batches([0, 0, 7], overhead_tokens=50) == [[0, 1], [2]]  # empty rows: no forward, no cost
    assert plan_batches([], overhead_tokens=5) == []


def test_peft_wrapped_model(tiny_tok):
    """Iterative labeling scores with a LoRA-adapted model: the fast path must see the adapter too."""
    from peft import LoraConfig, get_peft_model

    from testkit.tiny_models import tiny_llama

    model = get_peft_model(tiny_llama(tiny_tok), LoraConfig(r=4, target_modules=["q_proj", "v_proj"],
                                                            init_lora_weights=False)).eval()
    claims, labels, _ = make_pool(11, seed=12)
    queries = list(range(11))
    adapted = assert_same(HFScorer(model, tiny_tok), NaiveScorer(model, tiny_tok), claims, labels, queries)
    with model.disable_adapter():
        plain = NaiveScorer(model, tiny_tok).loo_scores(claims, labels, queries)
    assert np.abs(adapted - plain).max() > 1e-3  # the adapter changed the scores
