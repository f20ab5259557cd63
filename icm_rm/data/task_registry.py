"""Every named task, in one explicit table: the dataset tasks of `tasks.py` and the two tasks of each built-in fact
table (`<table>` pairs, `<table>_claims` claims). No module registers anything on import."""

from __future__ import annotations

from ..infra.errors import ConfigError
from .builtin import table_tasks
from .fact_tables import TABLES
from .tasks import ALPACA, GSM8K, HH_RLHF, QA_FEEDBACK, TRUTHFULQA, TRUTHFULQA_PREFERENCE, Task

DATASET_TASKS = (TRUTHFULQA, GSM8K, ALPACA, HH_RLHF, TRUTHFULQA_PREFERENCE, QA_FEEDBACK)
TASKS: dict[str, Task] = {t.name: t for t in (*DATASET_TASKS, *(t for table in TABLES.values() for t in table_tasks(table)))}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ConfigError("task", f"unknown task '{name}'; known: {', '.join(sorted(TASKS))}")
    return TASKS[name]


def task_names() -> list[str]:
    return sorted(TASKS)
