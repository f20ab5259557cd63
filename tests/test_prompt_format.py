"""One prompt-format rule for PPO, GRPO and eval-policy: `auto` is the chat template when the tokenizer has one."""

import copy

from rl.ppo.rollout import policy_prompt, prompt_text, resolve_prompt_format, tokenize_prompts


def test_auto_is_chat_with_a_template_and_raw_without(tiny_tok):
    q = "What is the capital of France?"
    assert resolve_prompt_format(tiny_tok, "auto") == "chat"
    text, templated = prompt_text(tiny_tok, q, "auto")
    assert (text, templated) == prompt_text(tiny_tok, q, "chat") and templated
    assert text == f"User: {q}\nAssistant:"
    assert prompt_text(tiny_tok, q, "raw") == (q, False)
    bare = copy.deepcopy(tiny_tok)
    bare.chat_template = None
    assert resolve_prompt_format(bare, "auto") == "raw"
    assert prompt_text(bare, q, "auto") == (q, False)
    assert prompt_text(bare, q, "chat") == (f"user: {q}\nassistant:", False)
    msgs = [{"role": "user", "content": q}]
    assert prompt_text(tiny_tok, msgs, "auto") == prompt_text(tiny_tok, q, "auto")
    assert prompt_text(tiny_tok, msgs, "raw") == (f"user: {q}\nassistant:", False)


def test_grpo_and_ppo_and_eval_see_the_same_tokens(tiny_model_dir):
    from transformers import AutoTokenizer

    from rl.grpo import GRPOConfig, _prompt_dataset

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    cfg = GRPOConfig(model=str(tiny_model_dir), reward_model="rl.rewards:substring_reward", prompts="builtin:capitals",
                     max_prompts=3)
    rows = _prompt_dataset(cfg, tok)["prompt"]
    assert rows == [policy_prompt(tok, p, "auto") for p in rows] and all(isinstance(r, list) for r in rows)
    # TRL renders conversational prompts with the chat template, then tokenises without adding special tokens
    grpo_ids = [tok(tok.apply_chat_template(r, add_generation_prompt=True, tokenize=False),
                    add_special_tokens=False).input_ids for r in rows]
    questions = [r[0]["content"] for r in rows]
    assert tokenize_prompts(tok, questions, "auto", 10**6) == grpo_ids   # PPO rollouts and eval-policy use this
