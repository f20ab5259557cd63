"""The `label` stage as one package: `config` (LabelConfig), `stage` (run_label, main), `search` (Algorithm 1 +
ConsistencyFix, resumable), `energy` (U = α·P − I), `batches`, `iterative`, `metrics` and `outputs`."""

from .config import LabelConfig
from .stage import run_label

__all__ = ["LabelConfig", "run_label"]
