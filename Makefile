# Touchline: the two commands of the README, and a few more.
#   make demo   set up .venv and run the main job on the embedded default (sample data -> batch -> DuckDB -> summary)
#   make test   set up .venv (with test extras) and run the whole test suite, emulators included
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?= -n auto --dist loadfile
DEMO_ARGS ?=

.PHONY: demo test bench docs install install-test browser clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

demo: $(VENV)/.installed
	$(BIN)/touchline demo $(DEMO_ARGS)

# Debian's chromium for the report's browser test (installed once with apt-get when missing; the
# test itself says how to install it where that is impossible)
browser:
	@sh tests/install_chromium.sh || echo "make: could not install chromium; tests/test_report_browser.py will say how" >&2

test: $(VENV)/.installed-test browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

docs: $(VENV)/.installed
	$(BIN)/python -m touchline.pipelines.docs tables --write docs/tables.md

bench: $(VENV)/.installed-test
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) data .pytest_cache build *.egg-info
