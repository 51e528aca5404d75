#!/usr/bin/env bash
# Builds Research Agent's container images offline (no registry, nothing pulled): static
# binaries from this machine's toolchain (`-C target-feature=+crt-static` on the gnu target),
# each copied into a `FROM scratch` image that runs as a non-root user. For a build inside
# Docker with internet access, see ./Dockerfile.
#
#   deploy/docker/build-images.sh            # tag "dev", release profile
#   RA_IMAGE_TAG=ci RA_IMAGE_PROFILE=dev deploy/docker/build-images.sh
#
# Images: research-agent/{registry,dataset,sandbox,evaluator,planner}-svc and
# research-agent/trainer (what trial pods run), all :$RA_IMAGE_TAG.
set -euo pipefail
cd "$(dirname "$0")/../.."

tag="${RA_IMAGE_TAG:-dev}"
profile="${RA_IMAGE_PROFILE:-release}"
target=x86_64-unknown-linux-gnu
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
# The static build goes to target/<triple>/<profile>; RUSTFLAGS reach only the target's crates
# (build scripts and proc macros stay ordinary host builds).
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" cargo build --locked \
  --profile "$profile" --target "$target" \
  -p registry-svc -p dataset-svc -p sandbox-svc -p evaluator-svc -p planner-svc -p ra-trainer --bins
dir="$CARGO_TARGET_DIR/$target/$([ "$profile" = dev ] && echo debug || echo "$profile")"

context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT

# image NAME ENTRYPOINT BINARY... — a FROM scratch image with the binaries in /usr/local/bin and
# two empty folders owned by the service's user, /state and /datasets, where volumes go: a new
# named volume takes its owner from the folder it is first mounted on.
image() {
  local name="$1" entry="$2"
  shift 2
  rm -rf "$context/$name" && mkdir -p "$context/$name/bin" "$context/$name/dirs/state" "$context/$name/dirs/datasets"
  for binary in "$@"; do
    file "$dir/$binary" | grep -Eq 'static(-pie)? linked' || {
      echo "$dir/$binary is not statically linked" >&2
      exit 1
    }
    # Debug information stays on the build machine; panics still name their location.
    strip --strip-debug -o "$context/$name/bin/$binary" "$dir/$binary"
  done
  cat > "$context/$name/Dockerfile" <<DOCKERFILE
FROM scratch
COPY bin/ /usr/local/bin/
COPY --chown=65532:65532 dirs/ /
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/$entry"]
DOCKERFILE
  docker build --quiet --label org.opencontainers.image.source=research-agent \
    -t "research-agent/$name:$tag" "$context/$name" >/dev/null 2>"$context/$name.log" || {
    cat "$context/$name.log" >&2
    exit 1
  }
  printf '%-32s %8s\n' "research-agent/$name:$tag" \
    "$(docker image inspect --format '{{.Size}}' "research-agent/$name:$tag" | numfmt --to=iec)"
}

image registry-svc registry-svc registry-svc
image dataset-svc dataset-svc dataset-svc
# The sandbox carries the trainer for train jobs on its process backend; it is its own
# ra-sandbox-init (multi-call), so no second binary is needed for that.
image sandbox-svc sandbox-svc sandbox-svc ra-trainer
image evaluator-svc evaluator-svc evaluator-svc
image planner-svc planner-svc planner-svc
image trainer ra-trainer ra-trainer
