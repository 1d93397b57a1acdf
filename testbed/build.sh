#!/usr/bin/env bash
# Builds the test bed's programs with `go build` through the Go module proxy: the
# control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# kubectl, kwok), the real node (kubelet, kube-proxy, containerd with ctr and its
# runc shim, the CNI plugins, CoreDNS, a pause binary compiled with gcc), daprd and
# Dapr's control plane (operator, injector, sentry, placement, scheduler), and helm.
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

# kubernetes_module VERSION: turns the current directory into a wrapper module for
# k8s.io/kubernetes and prints the -ldflags that stamp the version into its programs.
kubernetes_module() {
  local version=$1 staging_version="v0.${1#v1.}"
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
  local ldflags="-s -w" pkg
  for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  printf '%s' "$ldflags"
}

build_kubernetes() {
  local version=$1 out=$2 ldflags
  ldflags=$(kubernetes_module "$version")
  go build -trimpath -ldflags="$ldflags" -o "$out/" \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler \
    k8s.io/kubernetes/cmd/kubectl
}

# The real node's Kubernetes programs, cached apart from the control plane's so
# each set is rebuilt only when its own list changes (the Go build cache shares
# the packages both link).
build_kubernetes_node() {
  local version=$1 out=$2 ldflags
  ldflags=$(kubernetes_module "$version")
  go build -trimpath -ldflags="$ldflags" -o "$out/" \
    k8s.io/kubernetes/cmd/kubelet \
    k8s.io/kubernetes/cmd/kube-proxy
  # The sandbox (pause) image's program: Kubernetes' own pause.c, static, so the
  # image needs nothing else.
  local source
  source="$(go list -m -f '{{.Dir}}' k8s.io/kubernetes)/build/pause/linux/pause.c"
  gcc -Os -Wall -Werror -static -DVERSION="$version" -o "$out/pause" "$source"
  strip "$out/pause"
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

# dapr_module VERSION: turns the current directory into a wrapper module for
# github.com/dapr/dapr and prints the -ldflags that stamp its version.
dapr_module() {
  local version=$1 upstream
  go mod init taskapi.dev/testbed/dapr >/dev/null 2>&1
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
  printf '%s' "-s -w -X github.com/dapr/dapr/pkg/buildinfo.version=${version#v} -X github.com/dapr/dapr/pkg/buildinfo.gitversion=$version"
}

build_daprd() {
  local version=$1 out=$2 ldflags
  ldflags=$(dapr_module "$version")
  cp "$here/go/daprd/main.go" .
  go build -trimpath -tags stablecomponents -ldflags="$ldflags" -o "$out/daprd" .
}

# Dapr's control plane, as its Helm chart runs it. Static (CGO_ENABLED=0): the
# image holding them has no C library.
build_dapr_controlplane() {
  local version=$1 out=$2 ldflags
  ldflags=$(dapr_module "$version")
  # dapr v1.18.1's scheduler requires go-etcd-cron v0.12.5, which the Go module
  # proxy refuses ("403: This module version is not available"); the next patch
  # release is served and builds.
  if [[ $version == v1.18.1 ]]; then go mod edit -require=github.com/diagridio/go-etcd-cron@v0.12.6; fi
  CGO_ENABLED=0 go build -trimpath -ldflags="$ldflags" -o "$out/" \
    github.com/dapr/dapr/cmd/operator \
    github.com/dapr/dapr/cmd/injector \
    github.com/dapr/dapr/cmd/sentry \
    github.com/dapr/dapr/cmd/placement \
    github.com/dapr/dapr/cmd/scheduler
}

# containerd with ctr and the runc shim (the shim is required: containerd finds it
# next to itself). Static, without the btrfs, devmapper and zfs snapshotters; the
# node uses overlayfs.
build_containerd() {
  local version=$1 out=$2
  go mod init taskapi.dev/testbed/containerd >/dev/null 2>&1
  go mod edit -go=1.26 -require="github.com/containerd/containerd/v2@$version"
  local pkg=github.com/containerd/containerd/v2
  CGO_ENABLED=0 go build -trimpath -tags no_devmapper,no_zfs,no_btrfs \
    -ldflags="-s -w -X $pkg/version.Version=$version -X $pkg/version.Revision=$version" \
    -o "$out/" "$pkg/cmd/containerd" "$pkg/cmd/ctr" "$pkg/cmd/containerd-shim-runc-v2"
}

build_cni_plugins() {
  local version=$1 out=$2
  go mod init taskapi.dev/testbed/cni-plugins >/dev/null 2>&1
  go mod edit -go=1.26 -require="github.com/containernetworking/plugins@$version"
  local pkg=github.com/containernetworking/plugins/plugins
  CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$out/" \
    "$pkg/main/bridge" "$pkg/main/loopback" "$pkg/ipam/host-local" "$pkg/meta/portmap"
}

build_coredns() {
  local version=$1 out=$2
  go mod init taskapi.dev/testbed/coredns >/dev/null 2>&1
  go mod edit -go=1.26 -require="github.com/coredns/coredns@$version"
  CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$out/coredns" github.com/coredns/coredns
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
build kubernetes-node "$KUBERNETES_VERSION" build_kubernetes_node kubelet kube-proxy pause
build containerd "$CONTAINERD_VERSION" build_containerd containerd ctr containerd-shim-runc-v2
build cni-plugins "$CNI_PLUGINS_VERSION" build_cni_plugins bridge loopback host-local portmap
build coredns "$COREDNS_VERSION" build_coredns coredns
build daprd "$DAPR_VERSION" build_daprd daprd
build dapr-controlplane "$DAPR_VERSION" build_dapr_controlplane operator injector sentry placement scheduler
build helm "$HELM_VERSION" build_helm helm
log "all test bed binaries ready in $cache/bin"
