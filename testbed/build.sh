#!/usr/bin/env bash
# Builds the test bed's Go programs (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, kwok, daprd, helm) with `go build` through the Go module proxy.
#
# Each program is built from a wrapper module generated here from the versions in
# testbed/versions.env, into a cache outside the checkout keyed by version:
#   $TASKAPI_TESTBED_CACHE/bin/<component>-<version>/
# A finished build leaves a `.complete` stamp; a stamped directory holding every
# expected program is reused as is,
# so a warm run costs nothing. Builds go to a temporary directory first, so an
# interrupted build never leaves a half-filled cache entry behind.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
cache=${TASKAPI_TESTBED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/taskapi-testbed}
export GOFLAGS="-buildvcs=false -mod=mod"
# Two cores: keep the compiler from oversubscribing them further than go's default.
export GOMAXPROCS=${GOMAXPROCS:-2}

command -v go >/dev/null || { echo "testbed/build.sh: 'go' is missing; install Go >= 1.26 (https://go.dev/dl or your distribution)" >&2; exit 1; }

log() { printf '[testbed/build] %s\n' "$*" >&2; }

# module_dir COMPONENT VERSION: a fresh wrapper module directory for one build.
module_dir() {
  local dir="$cache/src/$1-$2"
  rm -rf "$dir" && mkdir -p "$dir"
  printf '%s' "$dir"
}

# is_built DIR PROGRAM...: the stamp is there and so is every program.
is_built() {
  local dir=$1 program
  shift
  [[ -f "$dir/.complete" ]] || return 1
  for program in "$@"; do [[ -x "$dir/$program" ]] || return 1; done
}

# build COMPONENT VERSION FUNCTION PROGRAM...: runs FUNCTION VERSION OUT_DIR in a
# fresh wrapper module unless every PROGRAM is cached.
build() {
  local component=$1 version=$2 fn=$3
  shift 3
  local out="$cache/bin/$component-$version"
  if is_built "$out" "$@"; then
    log "$component $version: cached in $out"
    return
  fi
  local tmp="$out.tmp.$$" src started=$SECONDS
  rm -rf "$tmp" && mkdir -p "$tmp"
  src=$(module_dir "$component" "$version")
  log "$component $version: building (this takes minutes on a cold cache)"
  (cd "$src" && "$fn" "$version" "$tmp")
  touch "$tmp/.complete"
  rm -rf "$out" && mv "$tmp" "$out"
  log "$component $version: built in $((SECONDS - started))s -> $out"
}

build_kubernetes() {
  local version=$1 out=$2 staging_version="v0.${1#v1.}"
  local upstream
  go mod init taskapi.dev/testbed/kubernetes >/dev/null 2>&1
  go mod edit -go=1.26 -require="k8s.io/kubernetes@$version"
  upstream=$(go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
  # k8s.io/kubernetes points every staging module (k8s.io/api, k8s.io/client-go, ...)
  # at ./staging/src/...; outside its repository they must come from the proxy at the
  # matching v0.x version.
  local module
  for module in $(sed -n 's#^[[:space:]]*\(k8s.io/[^ ]*\) => ./staging/.*#\1#p' "$upstream"); do
    go mod edit -replace="$module=$module@$staging_version"
  done
  local minor=${version#v1.}; minor=${minor%%.*}
  local ldflags="" pkg
  for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  go build -trimpath -ldflags="-s -w$ldflags" -o "$out/" \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler \
    k8s.io/kubernetes/cmd/kubectl
}

build_etcd() {
  local version=$1 out=$2
  go mod init taskapi.dev/testbed/etcd >/dev/null 2>&1
  cp "$here/go/etcd/main.go" .
  go mod edit -go=1.26 -require="go.etcd.io/etcd/server/v3@$version"
  go build -trimpath -ldflags="-s -w" -o "$out/etcd" .
}

build_kwok() {
  local version=$1 out=$2
  go mod init taskapi.dev/testbed/kwok >/dev/null 2>&1
  go mod edit -go=1.26 -require="sigs.k8s.io/kwok@$version"
  go build -trimpath -ldflags="-s -w" -o "$out/kwok" sigs.k8s.io/kwok/cmd/kwok
}

build_daprd() {
  local version=$1 out=$2 upstream
  go mod init taskapi.dev/testbed/daprd >/dev/null 2>&1
  cp "$here/go/daprd/main.go" .
  go mod edit -go=1.26 -require="github.com/dapr/dapr@$version"
  upstream=$(go mod download -json "github.com/dapr/dapr@$version" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
  # Replace directives only apply in the main module, so dapr's own (forks it
  # depends on) are copied into the wrapper; without them the build fails.
  local replaces
  replaces=$(go mod edit -json "$upstream" | node -e '
    const mod = JSON.parse(require("fs").readFileSync(0, "utf8"));
    for (const r of mod.Replace ?? []) {
      const from = r.Old.Version ? `${r.Old.Path}@${r.Old.Version}` : r.Old.Path;
      const to = r.New.Version ? `${r.New.Path}@${r.New.Version}` : r.New.Path;
      console.log(`${from}=${to}`);
    }')
  local replace
  for replace in $replaces; do go mod edit -replace="$replace"; done
  go build -trimpath -tags stablecomponents \
    -ldflags="-s -w -X github.com/dapr/dapr/pkg/buildinfo.version=${version#v} -X github.com/dapr/dapr/pkg/buildinfo.gitversion=$version" \
    -o "$out/daprd" .
}

build_helm() {
  local version=$1 out=$2 major=${1%%.*}
  go mod init taskapi.dev/testbed/helm >/dev/null 2>&1
  # Helm's own go.mod picks its k8s.io versions; the wrapper adds nothing to align.
  go mod edit -go=1.26 -require="helm.sh/helm/$major@$version"
  CGO_ENABLED=0 go build -trimpath \
    -ldflags="-s -w -X helm.sh/helm/$major/internal/version.version=$version -X helm.sh/helm/$major/internal/version.gitTreeState=clean" \
    -o "$out/helm" "helm.sh/helm/$major/cmd/helm"
}

mkdir -p "$cache/bin"
# One build at a time per cache: a second caller waits, then finds everything cached.
exec 9>"$cache/.build.lock"
flock 9
build etcd "$ETCD_VERSION" build_etcd etcd
build kwok "$KWOK_VERSION" build_kwok kwok
build kubernetes "$KUBERNETES_VERSION" build_kubernetes kube-apiserver kube-controller-manager kube-scheduler kubectl
build daprd "$DAPR_VERSION" build_daprd daprd
build helm "$HELM_VERSION" build_helm helm
log "all test bed binaries ready in $cache/bin"
