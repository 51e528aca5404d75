#!/usr/bin/env bash
# The chart's end-to-end test on ../shared/k8s/local-cluster, from nothing: builds the cluster
# (once) and the images, brings the cluster up, runs tests/tests/cluster.rs (the chart installed,
# sessions run as Kubernetes Jobs, the sandbox pod killed mid-session) and the kubernetes
# backend's tests, and brings the cluster down however they end.
#
#   deploy/cluster/test.sh            # RA_K8S_STATE (default /var/tmp/ra-k8s), RA_IMAGE_TAG (dev)
set -euo pipefail
cd "$(dirname "$0")/../.."
lc="${RA_LOCAL_CLUSTER:-$(cd .. && pwd)/shared/k8s/local-cluster}"
export RA_K8S_STATE="${RA_K8S_STATE:-/var/tmp/ra-k8s}"
export RA_IMAGE_TAG="${RA_IMAGE_TAG:-dev}"
deploy/cluster/local-cluster-build.sh "$lc"
RA_IMAGE_PROFILE="${RA_IMAGE_PROFILE:-dev}" deploy/docker/build-images.sh
trap '"$lc" down || true' EXIT
"$lc" up
eval "$("$lc" env)"
export RA_REQUIRE_TEST_DEPS=1
cargo test -p ra-integration-tests --test cluster --test helm_chart -- --nocapture
cargo test -p sandbox-svc --test kubernetes -- --nocapture
cargo test -p sandbox-svc --test escape kubernetes -- --nocapture
