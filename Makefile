# The two set-up commands of the README: `make study` and `make test`.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
SPEC    ?= studies/quickstart.toml
PYTEST_ARGS ?=

.PHONY: study test lint install clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Re-install only when the project's metadata changes (idempotent).
# tensorflow-cpu (an older dependency) and tensorflow own the same files: keep only tensorflow.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip uninstall --quiet --yes tensorflow-cpu 2>/dev/null || true
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

study: $(STAMP)
	$(BIN)/python -m weightsearch study $(SPEC)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check weightsearch tests scripts

clean:
	rm -rf $(VENV) *.egg-info
