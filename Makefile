# Studio: `make run` starts everything; `make test` runs every test. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# `make bench` also installs the `bench` extra (mlflow, the reference server); `make test` never does.
BENCH_STAMP := $(VENV)/.installed-bench-stamp

.PHONY: run test test-fast lint format bench migrate clean fuzz

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[dev,bench]"
	@touch $(BENCH_STAMP)

run: $(STAMP)
	$(BIN)/python manage.py runstudio

migrate: $(STAMP)
	$(BIN)/python manage.py migrate --noinput

# Each run gets its own data folder, so tests never touch a running studio's database or files.
test: $(STAMP)
	@data_dir=$$(mktemp -d); \
	STUDIO_DATA_DIR=$$data_dir $(BIN)/python -m pytest $(PYTEST_ARGS); status=$$?; \
	rm -rf $$data_dir; exit $$status

# Everything but the browser and real-worker tests, for a quick loop while coding.
test-fast: $(STAMP)
	@data_dir=$$(mktemp -d); \
	STUDIO_DATA_DIR=$$data_dir $(BIN)/python -m pytest -m "not e2e and not worker" $(PYTEST_ARGS); status=$$?; \
	rm -rf $$data_dir; exit $$status

# schemathesis over the whole API, deeper than `make test` runs it: STUDIO_FUZZ_EXAMPLES examples per operation
# (default 100) in every phase; STUDIO_FUZZ_SEED picks another run (tests/security/test_schemathesis.py).
fuzz: $(STAMP)
	@data_dir=$$(mktemp -d); \
	STUDIO_FUZZ_EXAMPLES=$${STUDIO_FUZZ_EXAMPLES:-100} STUDIO_DATA_DIR=$$data_dir \
	$(BIN)/python -m pytest tests/security/test_schemathesis.py -q -s -p no:cacheprovider $(PYTEST_ARGS); \
	status=$$?; rm -rf $$data_dir; exit $$status

lint: $(STAMP)
	$(BIN)/ruff check .

format: $(STAMP)
	$(BIN)/ruff format .

# Benchmarks are bench_*.py, so `make test` never collects them; each prints its ratio to scikit-learn
# measured in the same run, and the session writes bench-results.json.
bench: $(BENCH_STAMP)
	@data_dir=$$(mktemp -d); \
	STUDIO_DATA_DIR=$$data_dir $(BIN)/python -m pytest tests/benchmarks -o python_files='bench_*.py' -q -s $(PYTEST_ARGS); \
	status=$$?; rm -rf $$data_dir; exit $$status

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
