# Two commands on a fresh machine: `make demo` (main job) and `make test` (the test suite).
PY      ?= python3
VENV    ?= .venv
VPY     := $(VENV)/bin/python
STAMP   := $(VENV)/.icm-rm-installed
export HF_HUB_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup demo test test-slow bench clean

# torch==2.13.0 first (the CPU build on this machine's disk), then the project; skipped when already there.
$(STAMP): pyproject.toml
	test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -c "import torch" 2>/dev/null || $(VPY) -m pip install -q torch==2.13.0
	$(VPY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/icm-rm pipeline --config configs/pipeline/default.yaml

test: $(STAMP)
	$(VPY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(VPY) -m pytest -q -m slow $(PYTEST_ARGS)

bench: $(STAMP)
	$(VPY) benchmarks/run_all.py --quick

clean:
	rm -rf runs .pytest_cache
