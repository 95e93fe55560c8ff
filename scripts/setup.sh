#!/usr/bin/env bash
# Idempotent set-up for `make test` and `make certify`:
#   1. the Debian packages the local target runs (installed with apt-get when root, else listed);
#   2. a virtual environment in .venv with the locked dependencies and this project, editable.
# A stamp keyed by the lock file and pyproject.toml makes a second run take well under 5 s.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
VENV=${VENV:-.venv}
UV_VERSION=0.13.8
# command -> Debian package
declare -A DEBS=(
  [redis-server]=redis-server
  [redis-sentinel]=redis-sentinel
  [prometheus]=prometheus
  [promtool]=prometheus
  [prometheus-blackbox-exporter]=prometheus-blackbox-exporter
  # Alertmanager on the local target's ops host, receiving the platform's alerts.
  [prometheus-alertmanager]=prometheus-alertmanager
  [amtool]=prometheus-alertmanager
  [haproxy]=haproxy
  [nft]=nftables
  [ip]=iproute2
  # Tests render the HTML report in headless Chromium.
  [chromium]=chromium
  # benchmarks/load_efficiency.py compares the SLP load generator with wrk on HTTP.
  [wrk]=wrk
)

missing=()
for cmd in "${!DEBS[@]}"; do
  if ! command -v "$cmd" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$cmd" ] && [ ! -x "/sbin/$cmd" ]; then
    missing+=("${DEBS[$cmd]}")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: these Debian packages are missing and you are not root:" >&2
    echo "    sudo apt-get install -y ${missing[*]}" >&2
    echo "setup: install them, then run the command again. Nothing was started." >&2
    exit 3
  fi
  echo "setup: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # The packages' own services are not wanted: the harness starts its own processes.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
fi

stamp="$VENV/.setup-stamp"
want=$(cat requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$VENV/bin/harness" ]; then
  exit 0
fi
echo "setup: preparing the virtual environment in $VENV"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
[ -x "$VENV/bin/uv" ] || "$VENV/bin/python" -m pip install -q "uv==$UV_VERSION"
"$VENV/bin/uv" pip sync -q --python "$VENV/bin/python" requirements.lock
"$VENV/bin/uv" pip install -q --python "$VENV/bin/python" --no-deps -e .
echo "$want" > "$stamp"
echo "setup: ready"
