# Two commands do everything:  `make up` (install, then run the mesh)  and  `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# A portable llama.cpp build (AVX2 baseline): the native one crashes on some AVX-512/AMX CPUs, and
# pip caches the built wheel, so only the first install compiles it.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF
# The CPU build of torch (silero-vad depends on torch; we run its ONNX model without it).
TORCH ?= torch==2.13.0

.PHONY: install up test lint protos clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

node_modules/.bin/buf: package.json
	npm install --no-audit --no-fund --silent
	touch $@

install: $(BIN)/.installed node_modules/.bin/buf

up: $(BIN)/.installed
	$(BIN)/voicemesh up

protos: $(BIN)/.installed
	$(BIN)/python scripts/generate_protos.py --lock

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	node_modules/.bin/buf lint

test: install
	scripts/start_services.sh
	$(MAKE) --no-print-directory lint
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache
