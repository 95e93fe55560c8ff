#!/usr/bin/env bash
# Turn a run's Allure results into an Allure HTML report (`make report`):
#
#   reports/<run-id>/allure-results/  ->  reports/<run-id>/allure-report/index.html
#
# The run is RUN=<dir>, or the latest reports/<run-id> with a run.json. Its Allure results are
# rendered again from run.json first (`harness report`), so the report matches the source of
# truth. The npm package `allure` (Allure 3, pinned below) is installed into a cache outside
# the repo, ${XDG_CACHE_HOME:-$HOME/.cache}/gsharness/npm, only when missing; it needs Node.js
# and npm. The last line printed is the report's index.html.
# Usage: [RUN=reports/<run-id>] scripts/report.sh
set -euo pipefail

ALLURE_VERSION="3.18.0"
INSTALL_TIMEOUT_S=600
GENERATE_TIMEOUT_S=300

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${VENV:-$repo_root/.venv}"
cache_dir="${XDG_CACHE_HOME:-$HOME/.cache}/gsharness/npm"
allure="$cache_dir/node_modules/.bin/allure"

fail() { echo "report: $*" >&2; exit 1; }

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    fail "Node.js and npm are needed for the Allure HTML report and are not on PATH.
  Install them (Debian/Ubuntu: sudo apt-get install nodejs npm; or https://nodejs.org, 20 LTS
  or newer), then run \`make report\` again. The Allure results themselves are already in
  reports/<run-id>/allure-results/, and reports/<run-id>/report.html needs nothing."
fi

installed_version() {
    local manifest="$cache_dir/node_modules/allure/package.json"
    [[ -f "$manifest" ]] && node -p "require(process.argv[1]).version" "$manifest" 2>/dev/null
}

if [[ "$(installed_version || true)" != "$ALLURE_VERSION" || ! -x "$allure" ]]; then
    mkdir -p "$cache_dir"
    exec 9>"$cache_dir/.lock"
    flock 9
    if [[ "$(installed_version || true)" != "$ALLURE_VERSION" || ! -x "$allure" ]]; then
        echo "report: installing allure@$ALLURE_VERSION from npm into $cache_dir" >&2
        timeout "$INSTALL_TIMEOUT_S" npm install --prefix "$cache_dir" --no-save --no-audit \
            --no-fund --loglevel=error "allure@$ALLURE_VERSION" >&2 ||
            fail "npm could not install allure@$ALLURE_VERSION into $cache_dir; check the
  network to the npm registry (npm view allure version) and run \`make report\` again."
    fi
    exec 9>&-
fi

if [[ -n "${RUN:-}" ]]; then
    run_dir="$RUN"
else
    latest="$(ls -1d "$repo_root"/reports/*/run.json 2>/dev/null | sort | tail -n 1 || true)"
    [[ -n "$latest" ]] || fail "no run in $repo_root/reports yet; run \`make certify\` first,
  or pass RUN=<run directory>."
    run_dir="$(dirname "$latest")"
fi
[[ -f "$run_dir/run.json" ]] || fail "$run_dir has no run.json; pass RUN=<a run directory
  such as reports/<run-id>> written by \`harness certify\`."
run_dir="$(cd "$run_dir" && pwd)"

"$venv/bin/harness" report "$run_dir" >&2
name="$(node -p 'const r = require(process.argv[1]); `${r.profile} · run ${r.run_id}`' \
    "$run_dir/run.json")"
# One self-contained index.html (the data and attachments inside), to open from disk or archive
# like report.html; Allure's default needs a web server. Run in the run's directory, so that no
# allurerc of the caller's working directory applies.
config="$(mktemp --suffix=.json)"
trap 'rm -f "$config"' EXIT
echo '{"plugins": {"awesome": {"options": {"singleFile": true}}}}' >"$config"
rm -rf "$run_dir/allure-report"
timeout "$GENERATE_TIMEOUT_S" "$allure" generate "$run_dir/allure-results" \
    --config "$config" --cwd "$run_dir" --output "$run_dir/allure-report" \
    --report-name "$name" >&2 ||
    fail "allure generate failed for $run_dir/allure-results (see above)."
[[ -f "$run_dir/allure-report/index.html" ]] ||
    fail "allure generate wrote no $run_dir/allure-report/index.html."
echo "$run_dir/allure-report/index.html"
