# Two commands do all the set-up on a fresh machine:
#   make serve   installs cartsvc into .venv and runs it (embedded Redis by default)
#   make test    installs the test tools and runs the whole suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SERVE_ARGS ?= --catalog store-1=config/catalog.sample.csv

.PHONY: install serve test lint bench system-packages

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[fast]'
	touch $@

$(VENV)/.dev-installed: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[fast,dev]'
	touch $@

install: $(VENV)/.installed

serve: install
	$(BIN)/cartsvc serve $(SERVE_ARGS)

# The tests start their own redis-server (and nginx) on free loopback ports.
system-packages:
	@missing=""; \
	for tool in redis-server:redis-server redis-cli:redis-tools nginx:nginx; do \
	  PATH="$$PATH:/usr/sbin" command -v $${tool%%:*} >/dev/null 2>&1 || missing="$$missing $${tool#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing"; \
	  apt-get update -qq && apt-get install -y -qq $$missing; \
	fi

test: $(VENV)/.dev-installed system-packages
	$(BIN)/python -m pytest

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check cartsvc tests bench
	$(BIN)/ruff format --check cartsvc tests bench
	$(BIN)/mypy

bench: $(VENV)/.dev-installed system-packages
	$(BIN)/pip install --quiet -e '.[fast,dev,bench]'
	$(BIN)/python -m bench
