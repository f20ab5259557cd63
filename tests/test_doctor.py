"""`icm-rm doctor` prints every section, reflects the model cache, and never fails."""

from __future__ import annotations

import json
import re

from icm_rm.cli import main as cli_main
from icm_rm.infra import doctor, model_registry


def _sections(text: str) -> dict[str, list[str]]:
    out, current = {}, None
    for line in text.splitlines():
        if line and not line.startswith(" "):
            current = line
            out[current] = []
        elif current is not None and line.strip():
            out[current].append(line.strip())
    return out


def test_doctor_reports_every_section(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ICM_RM_HOME", str(tmp_path))
    fake = model_registry.model_dir("gemma3-270m")
    fake.mkdir(parents=True)
    (fake / model_registry.MARKER).write_text(json.dumps({"name": "gemma3-270m"}))
    assert cli_main(["doctor"]) == 0
    sections = _sections(capsys.readouterr().out)
    assert list(sections) == ["versions", "device", "caches", "deepspeed ops", "backends"]
    versions = dict(line.split(None, 1) for line in sections["versions"])
    for pkg in ("python", "torch", "transformers", "trl", "accelerate", "deepspeed", "peft", "datasets"):
        assert pkg in versions
    assert versions["transformers"] == "5.24.0"
    assert any(line.startswith("cpu ") and "usable core" in line for line in sections["device"])
    caches = "\n".join(sections["caches"])
    assert str(tmp_path) in caches
    # rows are padded to the longest key (registry names included)
    assert re.search(r"smollm2-135m \(default\) +not fetched: `icm-rm models fetch smollm2-135m`", caches)
    assert re.search(rf"gemma3-270m +cached \(float32\) at {re.escape(str(fake))}", caches)
    ds = "\n".join(sections["deepspeed ops"])
    assert "cpu_adam" in ds and "CPU shm comm" in ds
    backends = "\n".join(sections["backends"])
    for name in ("HF scorer", "probe scorer", "openai scorer", "server.base_url", "multi-GPU", "NCCL"):
        assert name in backends
    assert "default model not fetched yet" in backends


def test_a_failing_section_does_not_stop_the_report(monkeypatch):
    def broken():
        raise RuntimeError("boom")
    broken.__name__ = "device_section"
    monkeypatch.setattr(doctor, "SECTIONS", (doctor.versions_section, broken, doctor.cache_section))
    text = doctor.report()
    assert "device\n  failed: RuntimeError: boom" in text
    assert text.index("versions") < text.index("device") < text.index("caches")
