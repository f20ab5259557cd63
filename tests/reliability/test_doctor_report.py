"""`icm-rm doctor` through the real CLI covers what the reliability issue asks of it: versions, device, cache paths,
default-model status, DeepSpeed op availability and what each backend is missing — and exits 0."""

from __future__ import annotations

import re

from .conftest import run_cli


def test_doctor_covers_the_issue_list(env, icm_home):
    r = run_cli(["doctor"], env=env)
    assert r.rc == 0 and "Traceback" not in r.err, r.err
    text = r.out
    for heading in ("versions", "device", "caches", "deepspeed ops", "backends"):
        assert f"\n{heading}\n" in f"\n{text}", heading
    for item in ("torch", "transformers", "trl", "accelerate", "deepspeed", "peft",  # versions
                 "cuda", "cpu ",  # device
                 "features", "HF_HOME",  # cache paths
                 "cpu_adam", "JIT build dir",  # DeepSpeed ops
                 "probe scorer", "HF scorer", "openai scorer", "trainers (train-rm/ppo/grpo)", "multi-GPU",
                 "default model not fetched yet"):  # what each backend is missing
        assert item in text, item
    # rows are padded to the longest key (registry names included)
    assert re.search(rf"^  ICM_RM_HOME +{re.escape(str(icm_home))}$", text, re.M), text
    default = r"^    smollm2-135m \(default\) +not fetched: `icm-rm models fetch smollm2-135m`"
    assert re.search(default, text, re.M), text
