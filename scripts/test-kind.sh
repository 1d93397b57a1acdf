#!/usr/bin/env bash
# `npm run test:kind`: the end-to-end suite (test/e2e) on a kind cluster, for
# machines with a Docker engine; `npm test` runs the same suite on the test
# bed's real node. Dapr comes from its Helm chart, the images are built from
# the Dockerfile and loaded with `kind load`, the backends from config/backends
# (their public images are pulled), the operator from config/default.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

fail() {
  echo "test:kind: $*" >&2
  exit 1
}

command -v docker >/dev/null || fail "docker is missing. This needs a machine with Docker and kind; without them, 'npm test' runs the same suite on the test bed's real node."
docker info >/dev/null 2>&1 || fail "no Docker engine answers ('docker info' failed). This needs a running Docker engine and kind; without them, 'npm test' runs the same suite on the test bed's real node."
command -v kind >/dev/null || fail "kind is missing: install it (https://kind.sigs.k8s.io/docs/user/quick-start/#installation)."

# shellcheck source=../testbed/versions.env
source testbed/versions.env
cluster=${KIND_CLUSTER:-taskapi-e2e}
work=$(mktemp -d)
kubeconfig="$work/kubeconfig"
trap 'rm -rf "$work"' EXIT

# kubectl and helm as the suite runs them: the pinned ones testbed/build.sh builds.
bin=${TASKAPI_TESTBED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/taskapi-testbed}/bin
kubectl="$bin/kubernetes-$KUBERNETES_VERSION/kubectl"
helm="$bin/helm-$HELM_VERSION/helm"
[[ -x $kubectl && -x $helm ]] || fail "kubectl and helm are not built yet: run 'npm run setup' first."

if ! kind get clusters | grep -qx "$cluster"; then
  kind create cluster --name "$cluster" --wait 180s
fi
kind get kubeconfig --name "$cluster" >"$kubeconfig"

echo "[test:kind] Dapr ${DAPR_VERSION#v} from its Helm chart"
"$helm" --kubeconfig "$kubeconfig" upgrade --install dapr dapr --repo https://dapr.github.io/helm-charts \
  --version "${DAPR_VERSION#v}" --namespace dapr-system --create-namespace \
  --set dapr_sidecar_injector.webhookFailurePolicy=Fail \
  --set-json 'dapr_sidecar_injector.namespaceSelector={"matchExpressions":[{"key":"kubernetes.io/metadata.name","operator":"NotIn","values":["dapr-system","kube-system"]}]}' \
  --wait --timeout 5m

# The project's image under the names config/manager, the chart and the sample use.
mapfile -t names < <(node_modules/.bin/node -e "import('./testbed/harness/install.ts').then((m) => console.log(m.projectImageNames().join('\n')))")
tags=()
for name in "${names[@]}"; do tags+=(-t "$name"); done
echo "[test:kind] docker build ${tags[*]}"
docker build "${tags[@]}" .
kind load docker-image --name "$cluster" "${names[@]}"

KIND_CLUSTER=$cluster KUBECONFIG=$kubeconfig node_modules/.bin/vitest run --config vitest.kind.config.ts
