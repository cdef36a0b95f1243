# The two commands: `make run` and `make test` (and `make try`). Each installs into .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run try test lint install install-dev migrate bench-system bench-knowledge bench-ingest chromium

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall only when a requirements file changed.
$(VENV)/.installed: requirements.txt $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: install
	$(BIN)/python -m devtools.local run

# The bot with Meta's Graph API and Groq stood in for: each line typed (or piped) is a Messenger
# user's message, and the bot's reply is printed. Needs no account and no .env.
try: install
	$(BIN)/python -m devtools.local try

test: lint chromium
	$(BIN)/python -m devtools.local test $(PYTEST_ARGS)

# ruff's lint and format check, and import-linter's layers (.importlinter).
lint: install-dev
	$(BIN)/ruff check --quiet .
	$(BIN)/ruff format --check --quiet .
	$(BIN)/lint-imports --no-cache >/dev/null || $(BIN)/lint-imports --no-cache

# The browser tests drive Debian's Chromium; install it when missing and apt-get is there.
# (Never `playwright install`: no browser is downloaded from outside the distribution.)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
chromium:
	@[ -x /usr/bin/chromium ] || ! command -v apt-get >/dev/null || { \
		echo "Installing Debian's chromium for the browser tests"; \
		$(SUDO) apt-get install -y -qq chromium >/dev/null 2>&1 || \
		{ $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium; }; }

migrate: install
	$(BIN)/python manage.py migrate

# The headline benchmark: the whole service on this machine (docs/benchmarks.md).
bench-system: install-dev
	$(BIN)/python bench/system $(BENCH_ARGS)

bench-knowledge: install-dev
	$(BIN)/python bench/knowledge/run $(BENCH_ARGS)

bench-ingest: install-dev
	$(BIN)/python bench/ingest $(BENCH_ARGS)
