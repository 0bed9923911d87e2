# Two commands on a new machine: `make run` and `make test`. Both create .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck format clean system-deps

# Debian packages the tests use: dcmtk's storescu sends what pynetdicom refuses to,
# and the browser tests drive Debian's chromium (Playwright never downloads one).
DEBIAN_PACKAGES := dcmtk chromium

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python app.py demo --if-empty
	$(BIN)/python app.py serve

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

system-deps:
	@command -v storescu >/dev/null && command -v chromium >/dev/null || \
		(apt-get update -q && apt-get install -y -q $(DEBIAN_PACKAGES))

test: lint typecheck system-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache test-output
