"""Pure PPO pieces against obvious code: GAE vs a plain loop and a hand computation, whitening, KL estimators and
controllers, losses, the batch plan and the LR schedule."""

import math

import pytest
import torch

from rl.ppo.advantages import gae, masked_mean, masked_moments, moments_to_mean_var, whiten
from rl.ppo.kl import AdaptiveKLController, FixedKLController, kl_estimate
from rl.ppo.losses import entropy_from_logits, policy_loss, token_logprobs, value_loss

# A hand-written masked batch: lengths 4, 2 and 1 of T = 4.
REWARDS = torch.tensor([[0.1, -0.2, 0.0, 1.0], [0.3, 2.0, 9.0, 9.0], [-1.0, 9.0, 9.0, 9.0]])
VALUES = torch.tensor([[0.5, 0.4, 0.3, 0.2], [0.1, -0.1, 7.0, 7.0], [0.2, 7.0, 7.0, 7.0]])
MASK = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]])


def gae_loop(rewards, values, mask, gamma, lam):
    """The textbook recursion, one sequence and one step at a time."""
    adv = torch.zeros_like(rewards)
    for b in range(rewards.shape[0]):
        n = int(mask[b].sum())
        last = 0.0
        for t in reversed(range(n)):
            next_v = values[b, t + 1] if t + 1 < n else 0.0
            delta = rewards[b, t] + gamma * next_v - values[b, t]
            last = delta + gamma * lam * last
            adv[b, t] = last
    return adv, (adv + values) * mask


@pytest.mark.parametrize("gamma,lam", [(1.0, 0.95), (0.9, 0.8), (1.0, 1.0), (0.99, 0.0)])
def test_gae_equals_plain_loop(gamma, lam):
    adv, ret = gae(REWARDS, VALUES, MASK, gamma, lam)
    ref_adv, ref_ret = gae_loop(REWARDS, VALUES, MASK, gamma, lam)
    torch.testing.assert_close(adv, ref_adv, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ret, ref_ret, rtol=1e-5, atol=1e-6)
    assert (adv[MASK == 0] == 0).all()


def test_gae_hand_computation():
    # Row 2 (length 2), γ = 0.9, λ = 0.8:
    # δ1 = 2.0 + 0 − (−0.1) = 2.1; δ0 = 0.3 + 0.9·(−0.1) − 0.1 = 0.11
    # A1 = 2.1; A0 = 0.11 + 0.72·2.1 = 1.622
    adv, ret = gae(REWARDS, VALUES, MASK, 0.9, 0.8)
    assert adv[1, 1].item() == pytest.approx(2.1)
    assert adv[1, 0].item() == pytest.approx(1.622)
    assert ret[1, 0].item() == pytest.approx(1.722)
    # Row 3 (length 1): A0 = −1.0 − 0.2
    assert adv[2, 0].item() == pytest.approx(-1.2)


def test_random_batches_match_loop():
    g = torch.Generator().manual_seed(0)
    r, v = torch.randn(6, 17, generator=g), torch.randn(6, 17, generator=g)
    lengths = torch.tensor([17, 1, 5, 9, 16, 3])
    mask = (torch.arange(17)[None] < lengths[:, None]).long()
    adv, ret = gae(r, v, mask, 0.97, 0.9)
    ref_adv, ref_ret = gae_loop(r, v, mask, 0.97, 0.9)
    torch.testing.assert_close(adv, ref_adv, rtol=1e-4, atol=1e-5)


def test_whiten_matches_hand_stats():
    x = torch.tensor([[1.0, 2.0, 3.0, 100.0], [4.0, 5.0, 100.0, 100.0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    vals = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    mean, var = vals.mean(), vals.var(unbiased=True)          # mean 3, var 2.5
    out = whiten(x, mask)
    expected = (x - mean) / torch.sqrt(var + 1e-8) * mask
    torch.testing.assert_close(out, expected)
    kept = out[mask.bool()]
    assert kept.mean().abs() < 1e-6 and kept.std().item() == pytest.approx(1.0, abs=1e-5)
    # shift_mean=False keeps the mean; moments split over two "processes" give the same stats
    m = masked_moments(x[:1], mask[:1]) + masked_moments(x[1:], mask[1:])
    gm, gv = moments_to_mean_var(m)
    assert gm.item() == pytest.approx(3.0) and gv.item() == pytest.approx(2.5)
    assert whiten(x, mask, shift_mean=False)[mask.bool()].mean().item() == pytest.approx(3.0, abs=1e-5)
    assert masked_mean(x, mask).item() == pytest.approx(3.0)


def test_kl_estimators_equal_their_formulas():
    lp = torch.tensor([-1.0, -2.0, -0.5, -3.0])
    ref = torch.tensor([-1.5, -1.0, -0.5, -0.2])
    for a, b, k1, k3 in zip(lp.tolist(), ref.tolist(), kl_estimate(lp, ref, "k1").tolist(),
                            kl_estimate(lp, ref, "k3").tolist()):
        r = a - b
        assert k1 == pytest.approx(r)
        assert k3 == pytest.approx(math.exp(-r) - 1 + r)
        assert k3 >= 0
    assert kl_estimate(lp, ref, "k2").tolist() == pytest.approx((0.5 * (lp - ref) ** 2).tolist())
    with pytest.raises(ValueError):
        kl_estimate(lp, ref, "k4")


def test_kl_estimators_unbiased_on_samples():
    # Samples from p; E_p[k1] = E_p[k3] = KL(p‖q).
    p = torch.tensor([0.5, 0.3, 0.2])
    q = torch.tensor([0.2, 0.3, 0.5])
    exact = float((p * (p / q).log()).sum())
    idx = torch.multinomial(p, 200_000, replacement=True, generator=torch.Generator().manual_seed(0))
    lp, lq = p.log()[idx], q.log()[idx]
    assert kl_estimate(lp, lq, "k1").mean().item() == pytest.approx(exact, abs=0.01)
    assert kl_estimate(lp, lq, "k3").mean().item() == pytest.approx(exact, abs=0.01)


def test_kl_controllers():
    fixed = FixedKLController(0.1)
    fixed.update(100.0, 64)
    assert fixed.value == 0.1
    ada = AdaptiveKLController(0.1, target=6.0, horizon=10000)
    ada.update(12.0, 1000)          # error clipped to +0.2 → β × (1 + 0.2·0.1)
    assert ada.value == pytest.approx(0.1 * 1.02)
    ada.update(3.0, 1000)           # error −0.5 clipped to −0.2
    assert ada.value == pytest.approx(0.1 * 1.02 * 0.98)
    state = ada.state_dict()
    other = AdaptiveKLController(0.5, 6.0, 10000)
    other.load_state_dict(state)
    assert other.value == ada.value


def test_policy_loss_clipping():
    old = torch.zeros(1, 3)
    new = torch.log(torch.tensor([[1.5, 0.5, 1.1]]))     # ratios 1.5, 0.5, 1.1
    adv = torch.tensor([[1.0, -1.0, 1.0]])
    mask = torch.ones(1, 3)
    loss, stats = policy_loss(new, old, adv, mask, cliprange=0.2)
    # max(−A·ρ, −A·clip(ρ)): (−1.2), (0.8), (−1.1) → mean −0.5
    assert loss.item() == pytest.approx((-1.2 + 0.8 - 1.1) / 3)
    assert stats["clipfrac"].item() == pytest.approx(2 / 3)


def test_value_loss_clipping_and_mask():
    v = torch.tensor([[1.0, 0.0, 5.0]])
    old = torch.tensor([[0.0, 0.0, 0.0]])
    ret = torch.tensor([[1.0, 1.0, 1.0]])
    mask = torch.tensor([[1, 1, 0]])
    loss, stats = value_loss(v, old, ret, mask, cliprange_value=0.2)
    # token 0: max((1−1)², (0.2−1)²) = 0.64; token 1: max(1, 1) = 1 → 0.5 · mean = 0.41
    assert loss.item() == pytest.approx(0.41)
    assert stats["clipfrac"].item() == pytest.approx(0.5)


def test_token_logprobs_and_entropy():
    logits = torch.randn(2, 3, 7, generator=torch.Generator().manual_seed(1))
    tokens = torch.tensor([[0, 6, 3], [2, 2, 5]])
    ref = torch.log_softmax(logits, -1).gather(-1, tokens[..., None]).squeeze(-1)
    torch.testing.assert_close(token_logprobs(logits, tokens), ref)
    uniform = torch.zeros(1, 1, 8)
    assert entropy_from_logits(uniform).item() == pytest.approx(math.log(8), abs=1e-6)


def test_batch_plan_and_errors():
    from icm_rm.infra.errors import ConfigError
    from rl.ppo.config import BatchPlan, PPOConfig

    cfg = PPOConfig(model="m", prompts="p.jsonl", reward_model="x:y", rollout_batch_size=16, num_mini_batches=2,
                    micro_batch_size=2, ppo_epochs=3, num_steps=5)
    plan = BatchPlan.from_config(cfg, 2)
    assert (plan.rollout_per_process, plan.mini_per_process, plan.grad_accum, plan.updates_per_step,
            plan.total_updates) == (8, 4, 2, 6, 30)
    assert plan.describe() == ("ppo: 2 processes × 8 rollouts per step, 6 optimizer steps per step on 4 sequences "
                               "(2 × 2), 30 in all")
    with pytest.raises(ConfigError, match="rollout_batch_size"):
        BatchPlan.from_config(cfg, 3)
    with pytest.raises(ConfigError, match="micro_batch_size"):
        BatchPlan.from_config(PPOConfig(model="m", prompts="p", reward_model="x:y", rollout_batch_size=12,
                                        micro_batch_size=5), 1)
    with pytest.raises(ConfigError, match="reward_model"):
        PPOConfig(model="m", prompts="p")
    with pytest.raises(ConfigError, match="temperature"):
        PPOConfig(model="m", prompts="p", reward_model="x:y", temperature=0)


def test_lr_schedule():
    from rl.ppo.trainer import lr_factor

    assert [lr_factor(u, 10, 2, "linear") for u in (0, 1)] == [0.5, 1.0]
    assert lr_factor(2, 10, 2, "linear") == 1.0 and lr_factor(10, 10, 2, "linear") == 0.0
    assert lr_factor(6, 10, 2, "cosine") == pytest.approx(0.5)
    assert lr_factor(7, 10, 0, "constant") == 1.0
