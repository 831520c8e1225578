# One entry point per habit. Every target that runs code sets the project up first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SRC := dispatcher actors api

# The machine's own servers, for make test-system (CI runs the suite both ways).
SYSTEM_REDIS_URL ?= redis://127.0.0.1:6379/15
SYSTEM_DATABASE_URL ?= postgresql://postgres@127.0.0.1:5432/postgres

.PHONY: setup test test-system fuzz lint format bench bench-scale demo chaos chaos-short clean

setup: $(STAMP)

# Reinstalled only when pyproject.toml changes: quick when already done.
$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found (Python 3.11 is required)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The tests that need Redis and Postgres, against already-running servers instead of embedded.
test-system: setup
	DISPATCHER_REDIS_URL=$(SYSTEM_REDIS_URL) DISPATCHER_DATABASE_URL=$(SYSTEM_DATABASE_URL) \
		$(BIN)/python -m pytest -m services $(PYTEST_ARGS)

# schemathesis against the live API (the whole stack, as in the suite) with more examples than
# the suite's 200 per operation (25 for POST /instances: each restarts an actor).
FUZZ_MAX_EXAMPLES ?= 1000
FUZZ_MAX_REGISTRATIONS ?= 100
FUZZ_TIMEOUT_S ?= 3600
fuzz: setup
	FUZZ_MAX_EXAMPLES=$(FUZZ_MAX_EXAMPLES) FUZZ_MAX_REGISTRATIONS=$(FUZZ_MAX_REGISTRATIONS) \
		FUZZ_TIMEOUT_S=$(FUZZ_TIMEOUT_S) $(BIN)/python -m pytest tests/api/test_openapi.py \
		-k schemathesis -s $(PYTEST_ARGS)

# Faults on real processes during real campaigns (tests/chaos/): the table of what Meta saw.
# Everything runs on servers of its own under /tmp, traffic to 127.0.0.1 only; ~20 min.
chaos: setup
	$(BIN)/python -m tests.chaos --profile full $(CHAOS_ARGS)

chaos-short: setup
	$(BIN)/python -m tests.chaos --profile short $(CHAOS_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy $(SRC)

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: setup
	$(BIN)/python -m dispatcher.bench

# Every hot-path statement's plan at 10 million recipients (BENCH_SCALE_ROWS): ~10 min, ~5 GB.
bench-scale: setup
	$(BIN)/python -m dispatcher.bench pgscale

demo: setup
	$(BIN)/dispatcher demo

clean:
	rm -rf $(VENV) .dispatcher .pytest_cache .mypy_cache .ruff_cache
