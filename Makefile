# The README's two commands are `make test` and `make certify`; both set up what is missing first.
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup test certify nightly report kube lock clean down bench-recovery bench-refplat

setup:
	@bash scripts/setup.sh

test: setup kube
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy -p harness -p refplat
	$(BIN)/lint-imports
	$(BIN)/pytest tests

# The kube tier's control plane (etcd, kube-apiserver, ... and kwok), built from Go modules into a
# cache outside the repo, only when missing: about 12 minutes cold on 2 cores, 14 ms warm.
kube:
	@bash scripts/kube-build.sh

certify: setup
	$(BIN)/harness certify --target local --profile smoke

# The nightly gate: about eight minutes of repeated faults under load (not part of `make test`).
nightly: setup
	$(BIN)/harness certify --target local --profile nightly

# Allure HTML of the latest run (or RUN=reports/<run-id>) in <run>/allure-report/; needs Node.js
# and npm, and installs the npm package `allure` into ~/.cache/gsharness/npm when missing.
report: setup
	@RUN="$(RUN)" VENV="$(abspath $(VENV))" bash scripts/report.sh

# Benchmarks print their figures and save them to reports/bench/; not part of `make test`.
bench-recovery: setup
	$(BIN)/python benchmarks/recovery.py --repeat 5

bench-refplat: setup
	$(BIN)/python benchmarks/refplat_perf.py

down: setup
	$(BIN)/harness down

# Re-resolve the locked dependencies from requirements.in (needs the network to PyPI).
lock: setup
	$(BIN)/uv pip compile requirements.in --python-version 3.11 --generate-hashes -q -o requirements.lock

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .harness
