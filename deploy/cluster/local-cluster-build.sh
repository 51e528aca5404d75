#!/usr/bin/env bash
# `local-cluster build`, working around a defect of the shared tool: its make step runs
# `export KUBE_GIT_COMMIT=$KUBE_GIT_COMMIT` on a variable it declared readonly, which bash refuses
# ("KUBE_GIT_COMMIT: readonly variable"), so a cold build always fails. When the Kubernetes
# binaries are missing, this runs that same step (same source tree, patches, Go, environment and
# make targets) and copies the binaries where the tool keeps them; then the tool's own `build`
# does everything else (pause image, tools) and skips what is present. `up`, `env` and `down`
# stay the tool's.
#
#   deploy/cluster/local-cluster-build.sh [PATH-TO-local-cluster]
set -euo pipefail

lc="${1:-$(cd "$(dirname "$0")/../.." && pwd)/../shared/k8s/local-cluster}"
state="${RA_K8S_STATE:-/var/tmp/ra-k8s}"
kbin="$state/kbin"
bins=(kube-apiserver kube-controller-manager kube-scheduler kubelet)

missing=0
for b in "${bins[@]}"; do [ -x "$kbin/$b" ] || missing=1; done
if [ "$missing" = 1 ]; then
  # Packages and the Debian source package, through the tool.
  "$lc" build --download-only
  tree="$state/build/src/kubernetes-1.20.2"
  if [ ! -d "$tree" ]; then
    tar -C "$state/build/src" -xzf "$state/build/src/kubernetes_1.20.5+really1.20.2.orig.tar.gz"
  fi
  # The tool's two oom_score_adj constants (the kubelet must not lower scores on this host).
  sed -i 's/defaultSandboxOOMAdj int = -998/defaultSandboxOOMAdj int = 0/' "$tree/pkg/kubelet/dockershim/docker_sandbox.go"
  sed -i 's/guaranteedOOMScoreAdj int = -997/guaranteedOOMScoreAdj int = 0/' "$tree/pkg/kubelet/qos/policy.go"
  grep -q 'defaultSandboxOOMAdj int = 0' "$tree/pkg/kubelet/dockershim/docker_sandbox.go"
  grep -q 'guaranteedOOMScoreAdj int = 0' "$tree/pkg/kubelet/qos/policy.go"
  mkdir -p "$kbin" "$state/logs" "$state/build/home"
  echo "== building ${bins[*]} (Go 1.19, GOPROXY=off; log: $state/logs/build.log)"
  (
    cd "$tree"
    export PATH=/usr/lib/go-1.19/bin:$PATH GOPATH=$tree/.go CGO_ENABLED=0 GOPROXY=off GOSUMDB=off HOME=$state/build/home
    export KUBE_GIT_VERSION=v1.20.2 KUBE_GIT_TREE_STATE=clean KUBE_GIT_COMMIT=faecb196815e248d3ecfb03c680a4507229c2a56
    mkdir -p .go/src/k8s.io
    ln -sfn ../../.. .go/src/k8s.io/kubernetes
    nice -n 10 make WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler cmd/kubelet"
  ) >"$state/logs/build.log" 2>&1 || {
    tail -30 "$state/logs/build.log" >&2
    exit 1
  }
  for b in "${bins[@]}"; do
    cp -f "$tree/_output/bin/$b" "$kbin/$b.new" && mv -f "$kbin/$b.new" "$kbin/$b"
  done
fi
"$lc" build
