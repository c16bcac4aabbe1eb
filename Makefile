# Parley — two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install run test lint format pytest bench lock clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

# llama.cpp is built for this machine's CPU (-march=native). Its AMX kernels need the kernel's leave to use
# AMX tiles; where it is not given (sandboxed kernels such as gVisor) a build that found AMX dies with SIGSEGV
# at the first token. So on x86-64 the compiler is told to leave AMX out, and keeps every other feature it
# finds (AVX-512, VNNI, …); GGML_AMX_*=OFF alone is not enough, -march=native turns them back on.
NO_AMX := -mno-amx-tile -mno-amx-int8 -mno-amx-bf16
LLAMA_CMAKE_ARGS := $(if $(filter x86_64,$(shell uname -m)),-DCMAKE_C_FLAGS='$(NO_AMX)' -DCMAKE_CXX_FLAGS='$(NO_AMX)')

$(STAMP): requirements/dev.lock pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Parley needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip install --quiet --disable-pip-version-check -r requirements/dev.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	@# pip may have taken llama-cpp-python from its wheel cache, built earlier with other flags: if it cannot run
	@# here, build it again, bypassing the cache.
	$(BIN)/python -m parley.models.selfcheck || { CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip install --quiet \
		--disable-pip-version-check --force-reinstall --no-deps --no-cache-dir \
		"$$(grep '^llama-cpp-python==' requirements/dev.lock)" && $(BIN)/python -m parley.models.selfcheck; }
	@touch $@

install: $(STAMP)  ## create .venv and install the locked dependencies (the first time: about 7 minutes on two cores)

run: $(STAMP)  ## start Parley on 127.0.0.1:8000 (SQLite under ./data, in-process runner)
	$(BIN)/parley serve

test: lint pytest  ## the whole suite: lint, types, tests

lint: $(STAMP)  ## ruff (lint + format check) and mypy --strict
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/mypy src examples

pytest: $(STAMP)  ## the tests only
	$(BIN)/pytest $(PYTEST_ARGS)

format: $(STAMP)  ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix src tests bench examples
	$(BIN)/ruff format src tests bench examples

bench: $(STAMP)  ## run the benchmarks; figures go to bench/README.md by hand
	$(BIN)/python -m bench

lock: $(STAMP)  ## re-resolve the lock files from pyproject.toml
	$(BIN)/pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml -o requirements/runtime.lock --python-version 3.11 -q
	$(BIN)/uv pip compile pyproject.toml --extra dev -o requirements/dev.lock --python-version 3.11 -q

clean:  ## remove the virtualenv and caches (keeps ./data)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
