"""A small TRL-style preference file (capital-city pairs) that label-stage tests write and read."""

import json
from pathlib import Path

COUNTRIES = [("France", "Paris", "Lyon"), ("Spain", "Madrid", "Seville"), ("Italy", "Rome", "Milan"),
             ("Japan", "Tokyo", "Osaka"), ("Egypt", "Cairo", "Giza"), ("Peru", "Lima", "Cusco")]


def write_pairs(path: Path, n: int = 12) -> Path:
    """Write n prompt/chosen/rejected rows (the chosen side is the true capital) and return the path."""
    rows = []
    for k in range(n):
        c, good, bad = COUNTRIES[k % len(COUNTRIES)]
        rows.append({"id": f"q{k}", "prompt": f"What is the capital of {c}? ({k})",
                     "chosen": f"The capital of {c} is {good}.", "rejected": f"The capital of {c} is {bad}."})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
