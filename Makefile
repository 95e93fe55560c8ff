# The README's two commands are `make test` and `make certify`; both set up what is missing first.
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup test certify lint types contracts-imports lock clean down

setup:
	@bash scripts/setup.sh

test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy -p harness -p refplat
	$(BIN)/lint-imports
	$(BIN)/pytest tests

certify: setup
	$(BIN)/harness certify --target local --profile smoke

down: setup
	$(BIN)/harness down

# Re-resolve the locked dependencies from requirements.in (needs the network to PyPI).
lock: setup
	$(BIN)/uv pip compile requirements.in --python-version 3.11 --generate-hashes -q -o requirements.lock

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .harness
