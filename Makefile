# The README's commands. `make demo` and `make test` each set up .venv from the lock file first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# make test's workers: the suite mostly waits on brokers, servers and browsers, so two overlap
# that waiting even on two cores; each test file runs whole on one worker, with its fixtures.
TEST_WORKERS ?= 2

.PHONY: demo test check lint typecheck asyncapi fmt lock diagram serve screenshots bench faults clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

## Replay every shipped scenario and show the results.
demo: $(STAMP)
	$(BIN)/ivr replay scenarios/ --ledger

## Run the test suite (installs Mosquitto, Chromium and Graphviz with apt when missing and we are root).
test: $(STAMP)
	bash scripts/ensure-mosquitto.sh
	bash scripts/ensure-package.sh chromium chromium "the browser tests"
	bash scripts/ensure-package.sh graphviz dot "the SVG diagram tests"
	$(BIN)/python -m pytest -q --numprocesses=$(TEST_WORKERS) --dist=loadfile

## Measure: the engine, the bus, every target of docs/performance.md, and the stores (SQLite against
## PostgreSQL on 127.0.0.1:5432, docs/scaling.md) (4–10 min; run nothing else).
bench: $(STAMP)
	bash scripts/ensure-mosquitto.sh
	$(BIN)/python benchmarks/engine.py --calls 10000 --concurrency 500
	$(BIN)/python benchmarks/bus.py --calls 5000
	$(BIN)/python benchmarks/targets.py
	$(BIN)/python benchmarks/stores.py

## The fault suite at full size (docs/reliability.md), ~3.5 min; make test runs the short one.
faults: $(STAMP)
	bash scripts/ensure-mosquitto.sh
	IVR_FAULTS=full $(BIN)/python -m pytest -q tests/faults

## Regenerate the flow diagram in docs/flow.md from ivr/states/flow.py.
diagram: $(STAMP)
	$(BIN)/ivr diagram --update docs/flow.md

## The trainer console on http://127.0.0.1:8080/.
serve: $(STAMP)
	$(BIN)/ivr serve

## Retake the console screenshots in docs/img/ (the browser tests, writing into docs/).
screenshots: $(STAMP)
	bash scripts/ensure-package.sh chromium chromium "the browser tests"
	IVR_SCREENSHOTS=docs $(BIN)/python -m pytest -q tests/web/test_browser.py tests/web/test_layouts.py \
		tests/web/test_playback.py tests/web/test_records.py tests/web/test_room.py

## Lint, type-check, and validate docs/asyncapi.yaml with the official AsyncAPI CLI (installed into
## .tools/ on first use with npm, ~1 min).
check: lint typecheck asyncapi
asyncapi:
	bash scripts/asyncapi-validate.sh
lint: $(STAMP)
	$(BIN)/ruff check ivr tests benchmarks
	$(BIN)/ruff format --check ivr tests benchmarks
typecheck: $(STAMP)
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff format ivr tests benchmarks
	$(BIN)/ruff check --fix ivr tests benchmarks

## Re-pin requirements.lock from pyproject.toml's ranges.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install -q --upgrade pip
	.lock-venv/bin/python -m pip install -q '.[test]'
	.lock-venv/bin/python -m pip freeze --exclude-editable | grep -v '^ivr' > requirements.lock
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
