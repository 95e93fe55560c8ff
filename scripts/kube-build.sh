#!/usr/bin/env bash
# Build the local Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl) from fixtures/kube/go.mod, plus kwok, into a cache outside the repo:
#
#   ${XDG_CACHE_HOME:-$HOME/.cache}/gsharness/kube/<sha256(go.sum + kwok version)>/bin/
#
# Builds only what is missing; a warm run is a no-op. The last line printed is the bin dir.
# A cold build takes 15-30 minutes on 2 cores and about 1 GiB of Go module cache.
# Usage: scripts/kube-build.sh [--print-dir]   (--print-dir: print the dir, build nothing)
set -euo pipefail

KWOK_VERSION="v0.7.0" # go 1.24 directive, built against k8s.io/* v0.33 like the fixture

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mod_dir="$repo_root/fixtures/kube"
kube_version="$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v1\./ {print $2; exit}' "$mod_dir/go.mod")"
if [[ -z "$kube_version" ]]; then
    echo "kube-build: no k8s.io/kubernetes version in $mod_dir/go.mod" >&2
    exit 1
fi
key="$( (cat "$mod_dir/go.sum"; echo "kwok $KWOK_VERSION") | sha256sum | cut -c1-64)"
cache_dir="${XDG_CACHE_HOME:-$HOME/.cache}/gsharness/kube/$key"
bin_dir="$cache_dir/bin"
commands=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok)

complete() {
    local c
    for c in "${commands[@]}"; do [[ -x "$bin_dir/$c" ]] || return 1; done
}

if [[ "${1:-}" == "--print-dir" ]] || complete; then
    echo "$bin_dir"
    exit 0
fi

command -v go >/dev/null || { echo "kube-build: go is not on PATH" >&2; exit 1; }
mkdir -p "$cache_dir"
exec 9>"$cache_dir/.lock"
if ! flock -n 9; then
    echo "kube-build: another build holds $cache_dir/.lock; waiting for it" >&2
    flock 9
fi
if complete; then # another process built it while we waited
    echo "$bin_dir"
    exit 0
fi

minor="${kube_version#v1.}"
minor="${minor%%.*}"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$kube_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean"
done

stage="$cache_dir/bin.partial"
rm -rf "$stage"
mkdir -p "$stage"
export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=mod -trimpath"
start=$SECONDS

echo "kube-build: Kubernetes $kube_version, kwok $KWOK_VERSION -> $bin_dir" >&2
echo "kube-build: downloading modules" >&2
(cd "$mod_dir" && go mod download)
for c in etcd kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    pkg="k8s.io/kubernetes/cmd/$c"
    [[ "$c" == etcd ]] && pkg="./cmd/etcd"
    echo "kube-build: building $c ($((SECONDS - start))s elapsed)" >&2
    (cd "$mod_dir" && go build -ldflags "$ldflags" -o "$stage/$c" "$pkg")
done
echo "kube-build: building kwok $KWOK_VERSION ($((SECONDS - start))s elapsed)" >&2
(cd "$stage" && GOBIN="$stage" go install \
    -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION" \
    "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION")

"$stage/kube-apiserver" --version >&2
rm -rf "$bin_dir"
mv "$stage" "$bin_dir"
echo "kube-build: done in $((SECONDS - start))s" >&2
echo "$bin_dir"
