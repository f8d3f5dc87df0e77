# TokenHub: `make run` for a local instance, `make test` for the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= 1
# SIGTERM: requests in flight get this long to finish, then are cut and settled.
SHUTDOWN_DRAIN_SECONDS ?= 20

.PHONY: install run serve worker beat test lint typecheck pytest bench bench-dashboard bench-client clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

run: install
	$(BIN)/python manage.py migrate --noinput -v0
	$(BIN)/python manage.py demo_setup
	$(BIN)/python -m tokenhub.launcher --host $(HOST) --port $(PORT)

serve: install
	$(BIN)/uvicorn tokenhub.asgi:application --host $(HOST) --port $(PORT) \
		--workers $(WORKERS) --loop uvloop --http httptools --no-access-log --lifespan on \
		--no-proxy-headers --timeout-graceful-shutdown $(SHUTDOWN_DRAIN_SECONDS)

worker: install
	$(BIN)/celery -A tokenhub worker -l INFO

beat: install
	$(BIN)/celery -A tokenhub beat -l INFO

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

typecheck: install
	$(BIN)/mypy

pytest: install
	bash scripts/ensure-test-servers.sh
	bash scripts/ensure-agents.sh
	$(BIN)/python -m pytest --durations=15
	TOKENHUB_TEST_EMBEDDED=1 $(BIN)/python -m pytest -m embedded --durations=15

# Lint and type checks run beside the tests (they only read the sources): the suite's
# wall time stays under its 30 minutes on this 2-core machine. Their output follows.
test: install
	$(MAKE) --no-print-directory lint typecheck > $(VENV)/checks.log 2>&1 & checks=$$!; \
	$(MAKE) --no-print-directory pytest; tests=$$?; \
	wait $$checks; checked=$$?; cat $(VENV)/checks.log; \
	test $$tests -eq 0 && test $$checked -eq 0

bench: install
	bash scripts/ensure-test-servers.sh
	$(BIN)/python benchmarks/relay_overhead.py

bench-dashboard: install
	bash scripts/ensure-test-servers.sh
	$(BIN)/python benchmarks/dashboard_pages.py

bench-client: install
	$(BIN)/python benchmarks/upstream_client.py

clean:
	rm -rf $(VENV) var/*.sqlite3* .mypy_cache .pytest_cache .ruff_cache
