# The README's two commands are `make test` and `make certify`; both set up what is missing first.
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup test certify certify-kind certify-cluster nightly report kube lock clean down bench-recovery bench-refplat bench-load bench-scale bench-redis bench-catalogue bench-kube-scale certification

setup:
	@bash scripts/setup.sh

test: setup kube
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy -p harness -p refplat
	$(BIN)/lint-imports
	$(BIN)/pytest tests --durations=30

# The kube tier's control plane (etcd, kube-apiserver, ... and kwok), built from Go modules into a
# cache outside the repo, only when missing: about 12 minutes cold on 2 cores, 14 ms warm.
kube:
	@bash scripts/kube-build.sh

certify: setup
	$(BIN)/harness certify --target local --profile smoke

# The platform inside a kind cluster (needs docker or podman and kind; docs/operations.md).
certify-kind: setup
	$(BIN)/harness certify --target kind --profile kind

# The platform inside an existing cluster: make certify-cluster CONTEXT=name IMAGE=registry/refplat:tag
certify-cluster: setup
	@test -n "$(CONTEXT)" || { echo "make certify-cluster: set CONTEXT=<kubeconfig context> (and IMAGE=<pullable refplat image>)" >&2; exit 2; }
	$(BIN)/harness certify --target kube --overlay kind --profile kind --context "$(CONTEXT)" $(if $(IMAGE),--image "$(IMAGE)")

# The nightly gate: about eight minutes of repeated faults under load (not part of `make test`).
nightly: setup
	$(BIN)/harness certify --target local --profile nightly

# Pre-release certification at 10,000 game servers (about ten minutes; not part of `make test`).
certification: setup
	$(BIN)/harness certify --target local --profile certification

# Allure HTML of the latest run (or RUN=reports/<run-id>) in <run>/allure-report/; needs Node.js
# and npm, and installs the npm package `allure` into ~/.cache/gsharness/npm when missing.
report: setup
	@RUN="$(RUN)" VENV="$(abspath $(VENV))" bash scripts/report.sh

# Benchmarks print their figures and save them to reports/bench/; not part of `make test`.
bench-recovery: setup
	$(BIN)/python benchmarks/recovery.py --repeat 5

bench-refplat: setup
	$(BIN)/python benchmarks/refplat_perf.py

# Load-generator efficiency: SLP pings per Locust CPU-second, beside wrk on HTTP.
bench-load: setup
	$(BIN)/python benchmarks/load_efficiency.py

# Redis primary killed: time to a new primary, to a ready API, to an acknowledged write.
bench-redis: setup
	$(BIN)/python benchmarks/redis_failover.py --repeat 5

# 10,000 game servers: time to all Ready, controller and agent memory at that scale.
bench-scale: setup
	$(BIN)/python benchmarks/refplat_perf.py --scale

# Recovery per fault type of the catalogue (p50/max over 5 injections each) and each profile's
# time up and down; partitions need root. Ends with one Markdown table. About 25 minutes.
bench-catalogue: setup
	$(BIN)/python benchmarks/recovery.py --repeat 5
	$(BIN)/python benchmarks/catalogue_recovery.py --repeat 5
	$(BIN)/python benchmarks/partition_recovery.py --repeat 5
	$(BIN)/python benchmarks/redis_failover.py --repeat 5
	$(BIN)/python benchmarks/region_outage.py --repeat 5
	$(BIN)/python benchmarks/topology.py
	$(BIN)/python benchmarks/_figures.py

# 10,000 game-server Pods on 100 KWOK nodes, created through the platform's API (issue 7);
# builds the kube tier's binaries when missing. 5-10 minutes.
bench-kube-scale: setup kube
	$(BIN)/python benchmarks/kube_scale.py --pods 10000 --nodes 100

down: setup
	$(BIN)/harness down

# Re-resolve the locked dependencies from requirements.in (needs the network to PyPI).
lock: setup
	$(BIN)/uv pip compile requirements.in --python-version 3.11 --generate-hashes -q -o requirements.lock

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .harness
