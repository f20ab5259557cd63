"""Turn a reliability run's measurement log into the table in docs/reliability.md.

    ICM_RM_RELIABILITY_LOG=/tmp/rel.jsonl pytest tests/reliability             # fast suite
    ICM_RM_RELIABILITY_LOG=/tmp/rel.jsonl pytest tests/reliability -m slow     # the rest
    python tests/reliability/summarize.py /tmp/rel.jsonl
"""

from __future__ import annotations

import json
import sys
from collections import Counter, defaultdict


COMMANDS = ("eval-rm", "eval-policy", "label", "rm", "ppo", "grpo", "pipeline", "serve-rm", "models")
CLASSES = {"value": "config values: non-finite, out of range, TRL values that fail late",
           "yaml": "YAML/flags: duplicate keys, aliases, deep nesting, huge integers, a list",
           "file": "paths: a directory, FIFO or device as a file; a file as output_dir",
           "json": "JSON nested past the recursion limit, huge integers",
           "model": "broken model dirs, RM stats, vocab / chat-template mismatches",
           "device": "unknown device strings, cuda on a CPU-only build",
           "reward": "reward sources: syntax error, null / NaN rewards",
           "resume": "resume with a changed config or data; corrupt checkpoints",
           "overwrite": "--overwrite with bad input (old run kept)"}

# The issue's catalogue classes. An exit-2 case counts under the class its `cls` belongs to; a functional check
# ("check" rows: something kept, refused or computed right) under its own. The issue lists a few inputs under two
# classes (a NaN learning rate tracebacked in one stage and was accepted in another); each case is counted once here.
ISSUE = {"tracebacks": ("yaml", "file", "json", "model", "device", "reward"),
         "silent success on bad input": ("value", "resume", "silent"),
         "data loss": ("overwrite", "data_loss"),
         "security": ("security",),
         "wrong numbers": ("numbers",),
         "correctness found in review": ("review",)}


def _command(case: str) -> str:
    for c in COMMANDS:
        if case.startswith(c + "-"):
            return "train-rm" if c == "rm" else c
    return "output dir / disk (every stage)"


def summarize(rows: list[dict]) -> str:
    kills = [r for r in rows if r["kind"] == "kill"]
    bad = [r for r in rows if r["kind"] == "bad_input" and not r["case"].startswith("disk-full")]  # those are faults
    by_stage: dict[str, list[dict]] = defaultdict(list)
    for r in kills:
        fault = "ENOSPC mid-run" if r["point"].startswith("ENOSPC") else "kill -9"
        by_stage[f"{fault}: {r['stage']}" + (f" ({r['scorer']} scorer)" if r.get("scorer") else "")].append(r)
    lines = ["| fault injected | count | resumed to the uninterrupted result |", "|---|---|---|"]
    for stage, rs in sorted(by_stage.items(), key=lambda kv: (kv[0].startswith("ENOSPC"), kv[0])):
        lines.append(f"| {stage} | {len(rs)} | {sum(r['matched'] for r in rs)} |")
    lines.append(f"| **all faults** | **{len(kills)}** | **{sum(r['matched'] for r in kills)}** |")
    modes = Counter(r["mode"] for r in bad)
    commands = Counter(_command(r["case"]) for r in bad)
    lines += ["", "| bad inputs | count |", "|---|---|",
              f"| cases tried (real subprocess / in-process `icm_rm.cli.main`) | {len(bad)} ({modes['sub']} / "
              f"{modes['in']}) |",
              f"| exit code 2 with one `icm-rm: error:` line | {sum(r['rc'] == 2 for r in bad)} |",
              f"| tracebacks seen | {sum(bool(r['traceback']) for r in bad)} |"]
    lines += [f"| … {name} | {n} |" for name, n in sorted(commands.items(), key=lambda kv: -kv[1])]
    classes = Counter(r.get("cls") for r in bad if r.get("cls"))
    if classes:
        lines += ["", "| class (issue #19) | cases | exit 2, one line | tracebacks |", "|---|---|---|---|"]
        for cls, n in sorted(classes.items(), key=lambda kv: list(CLASSES).index(kv[0])):
            rs = [r for r in bad if r.get("cls") == cls]
            lines.append(f"| {CLASSES[cls]} | {n} | {sum(r['rc'] == 2 for r in rs)} | "
                         f"{sum(bool(r['traceback']) for r in rs)} |")
    lines += _issue_table(bad, [r for r in rows if r["kind"] == "check"])
    first, last = min(r["time"] for r in rows), max(r["time"] for r in rows)
    lines.append(f"\nMeasured {first} – {last}.")
    return "\n".join(lines)


def _issue_table(bad: list[dict], checks: list[dict]) -> list[str]:
    """Issue #19's classes: exit-2 cases (and how many ended cleanly) and functional checks that passed."""
    if not checks and not any(r.get("cls") for r in bad):
        return []
    lines = ["", "| issue #19 class | exit-2 cases | … clean (exit 2, one line, no traceback) | functional checks "
                 "passed |", "|---|---|---|---|"]
    for name, classes in ISSUE.items():
        rs = [r for r in bad if r.get("cls") in classes]
        ok = sum(r["rc"] == 2 and not r["traceback"] for r in rs)
        cs = [r for r in checks if r.get("cls") in classes]
        lines.append(f"| {name} | {len(rs)} | {ok} | {len(cs)} |")  # a check is logged only when its test passed
    return lines


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as f:
        print(summarize([json.loads(line) for line in f if line.strip()]))
