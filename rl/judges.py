"""Judges for eval-policy: the built-in task's gold checker or a held-out RM, never an RM a compared policy was
trained against."""

from __future__ import annotations

import json
from pathlib import Path

from icm_rm.data.builtin import gold_check
from icm_rm.infra.errors import ConfigError
from icm_rm.reward.scoring import RewardModel


def last_message_text(x) -> str:
    """A string as it is, or the content of the last chat message (the question a prompt asks)."""
    return x if isinstance(x, str) else (x[-1]["content"] if x else "")


def training_rms(policy_dir: str) -> list[Path]:
    """The RM directories a policy was trained against, from its RL run's run.json (`<run>/policy` → `<run>`)."""
    run_json = Path(policy_dir).parent / "run.json"
    if Path(policy_dir).name != "policy" or not run_json.exists():
        return []
    rl_cfg = json.loads(run_json.read_text()).get("config") or {}

    def paths(spec) -> list[str]:
        if isinstance(spec, str):
            return [spec]
        if isinstance(spec, dict):
            return [spec["path"]] if "path" in spec else [p for sub in spec.get("sources", []) for p in paths(sub)]
        return []

    found = paths(rl_cfg["reward"]) if rl_cfg.get("reward") else paths(rl_cfg.get("reward_model"))
    return [Path(p).resolve() for p in found if Path(p).is_dir()]


def refuse_judging_with_training_rm(judge: str | None, named: list[tuple[str, str]]) -> None:
    """A judge RM that a compared policy was trained against would grade its own optimisation target: refused."""
    if not judge or judge.startswith("gold:") or not Path(judge).is_dir():
        return
    j = Path(judge).resolve()
    for name, path in named:
        if j in training_rms(path):
            raise ConfigError("judge", f"{judge} is the reward model '{name}' was trained against; judge with "
                                       "gold:<task> or an RM that no compared policy was trained on")


def judge_spec(judge: str | None, prompts: str, key: str = "judge") -> str:
    """The judge as `gold:<task>` or an RM dir: null means the built-in prompts' gold checker. Refused, naming
    `key`, where there is none (file prompts) or the RM dir does not exist, so a pipeline can check it up front."""
    if judge is None:
        if not str(prompts).startswith("builtin:"):
            raise ConfigError(key, f"the prompts ({prompts}) are not built-in, so there is no gold checker: pass "
                                   "judge: DIR (an RM that no compared policy was trained against)")
        return "gold:" + prompts.split(":", 1)[1]
    if not judge.startswith("gold:") and not Path(judge).is_dir():
        raise ConfigError(key, f"{judge}: no such judge RM directory (or gold:<builtin task>)")
    return judge


def make_judge(judge: str | None, prompts: str, device: str):
    """A function (prompts, answers) → scores, and its description."""
    spec = judge_spec(judge, prompts)
    if spec.startswith("gold:"):
        task = spec.split(":", 1)[1]

        def gold(prompts, answers):
            return [{True: 1.0, False: 0.0, None: 0.5}[gold_check(task, last_message_text(p), a)] for p, a in zip(prompts, answers)]

        return gold, f"gold checker of built-in task '{task}'"

    rm = RewardModel.from_pretrained(spec, device=device)
    return (lambda prompts, answers: rm.score(prompts, answers).tolist()), f"judge RM {spec}"
