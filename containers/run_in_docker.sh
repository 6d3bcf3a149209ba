#!/usr/bin/env bash
# The containerised path end to end: build the runtime image and run the compiled pipeline
# pipelines/export_to_serving.yaml in containers with kfp.local's DockerRunner, on a tiny Keras model.
#
# Needs root on Debian bookworm (it installs docker.io and debootstrap with apt-get when missing). It starts
# its own Docker engine (own data root under .cache/container, own socket, no bridge network, no iptables)
# and stops it on exit. Docker Hub is not needed: the base image is a debootstrap'ed Debian root filesystem
# (cached as .cache/container/bookworm-minbase.tar); set KFP_TFSERVING_BASE_IMAGE to use another base that
# the engine already has. Builds and containers use the host network.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="$REPO/.cache/container"
ROOTFS_TAR="$CACHE/bookworm-minbase.tar"
BASE_TAG="kfp-tfserving-base:bookworm-minbase"
PY="$REPO/.venv/bin/python"
mkdir -p "$CACHE"

log() { echo "[container-test] $*"; }

[ -x "$PY" ] || { echo "$PY missing: run 'make setup' first" >&2; exit 2; }
if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null || ! command -v docker >/dev/null; then
  [ "$(id -u)" = 0 ] || { echo "docker.io and debootstrap are missing; install them (as root): apt-get install docker.io debootstrap" >&2; exit 2; }
  log "installing docker.io and debootstrap"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io debootstrap >/dev/null
fi

# A private engine: its own socket and state, so it never touches another engine on this machine.
RUNDIR="$(mktemp -d /tmp/kfp-tfserving-docker.XXXXXX)"
export DOCKER_HOST="unix://$RUNDIR/docker.sock"
DOCKERD_PID=""
stop_engine() {
  if [ -n "$DOCKERD_PID" ] && kill -0 "$DOCKERD_PID" 2>/dev/null; then
    kill "$DOCKERD_PID"
    for _ in $(seq 1 30); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 1; done
    kill -9 "$DOCKERD_PID" 2>/dev/null || true
  fi
  # dockerd leaves its network namespace bind-mounted under the exec root.
  findmnt -rn -o TARGET | grep "^$RUNDIR/" | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$RUNDIR" 2>/dev/null || true
}
trap stop_engine EXIT
dockerd --data-root "$CACHE/docker" --exec-root "$RUNDIR/exec" --pidfile "$RUNDIR/dockerd.pid" \
  -H "$DOCKER_HOST" --bridge=none --iptables=false >"$CACHE/dockerd.log" 2>&1 &
DOCKERD_PID=$!
for _ in $(seq 1 60); do docker version >/dev/null 2>&1 && break; sleep 1; done
docker version >/dev/null 2>&1 || { tail -n 20 "$CACHE/dockerd.log" >&2; echo "dockerd did not start" >&2; exit 1; }
log "engine up (pid $DOCKERD_PID, $DOCKER_HOST)"

apt_mirror() {  # the Debian mirror this machine's apt already uses, so debootstrap reaches the same place
  local uri
  uri="$(grep -hE '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
    | grep -v security | sed -E 's/^URIs:[[:space:]]*//; s/^deb (\[[^]]*\] )?//' | awk '{print $1}' \
    | grep -E '^https?://.*/debian/?$' | head -n 1 || true)"
  echo "$uri"
}

BASE_IMAGE="${KFP_TFSERVING_BASE_IMAGE:-}"
if [ -z "$BASE_IMAGE" ]; then
  BASE_IMAGE="$BASE_TAG"
  if ! docker image inspect "$BASE_TAG" >/dev/null 2>&1; then
    if [ ! -s "$ROOTFS_TAR" ]; then
      log "debootstrap bookworm (minbase) -> $ROOTFS_TAR"
      ROOTFS="$(mktemp -d "$CACHE/rootfs.XXXXXX")"
      debootstrap --variant=minbase bookworm "$ROOTFS" $(apt_mirror) >"$CACHE/debootstrap.log" 2>&1 \
        || { tail -n 20 "$CACHE/debootstrap.log" >&2; rm -rf "$ROOTFS"; exit 1; }
      rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb
      tar -C "$ROOTFS" -cf "$ROOTFS_TAR.tmp" . && mv "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
      rm -rf "$ROOTFS"
    fi
    docker import "$ROOTFS_TAR" "$BASE_TAG" >/dev/null
    log "imported $BASE_TAG"
  fi
fi

"$REPO/containers/build_image.sh" --base "$BASE_IMAGE"

log "running pipelines/export_to_serving.yaml with DockerRunner (log: $CACHE/run.log)"
if ! "$PY" "$REPO/containers/docker_pipeline_run.py" --work "$CACHE/run" >"$CACHE/run.log" 2>&1; then
  tail -n 40 "$CACHE/run.log" >&2
  echo "the containerised pipeline run failed; log: $CACHE/run.log" >&2
  exit 1
fi
log "$(tail -n 1 "$CACHE/run.log")"
