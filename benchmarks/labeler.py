"""The default labeler of `icm-rm label` for benchmarks that call the search directly: the scorer the label stage
builds for a pool (`LabelConfig` defaults), its zero-shot verdicts and sign verdict as the stage hands them to the
search, and the task's consistency rules."""

from __future__ import annotations

from icm_rm.data.task_registry import get_task
from icm_rm.label.config import LabelConfig
from icm_rm.scoring.registry import build_scorer
from icm_rm.scoring.settings import ProbeConfig
from icm_rm.scoring.verdicts import zero_shot_signal


def labeler_parts(pool, model: str, probe: ProbeConfig | None = None):
    """(claims, scorer, verdicts, sign, rules) for one pool, built as `icm-rm label --model M` builds them."""
    settings = LabelConfig(model=model, probe=probe or ProbeConfig())
    scorer = build_scorer(settings, pool)
    claims = pool.claims
    verdicts = {kind: zero_shot_signal(claims, v) for kind, v in scorer.zero_shot_verdicts(claims).items()}
    sign = scorer.sign_verdict(claims)
    return claims, scorer, verdicts, None if sign is None else zero_shot_signal(claims, sign), get_task(pool.name).rules
