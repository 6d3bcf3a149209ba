#!/usr/bin/env bash
# Build the component runtime image kfp-tfserving-runtime:<package version> with whatever Docker engine
# DOCKER_HOST (or the default socket) points at.
#
#   containers/build_image.sh [--base IMAGE] [--tfx]     (default base: python:3.11-slim-bookworm)
#
# --tfx also builds kfp-tfserving-tfx:<package version> on top of it (containers/tfx/Dockerfile): the image
# the TFX component ServingPusher runs in on Kubeflow.
#
# pip inside the build uses this machine's package index settings (PIP_INDEX_URL / PIP_EXTRA_INDEX_URL /
# PIP_TRUSTED_HOST or `pip config`), passed as build arguments; only http(s) indexes are passed, since
# local paths do not exist inside the build. Extra CA certificates: put *.crt files in
# containers/runtime/ca/ (never committed); this machine's CA bundle is added at build time too.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
BASE_IMAGE="python:3.11-slim-bookworm"
WITH_TFX=""
while [ $# -gt 0 ]; do
  case "$1" in
    --base) BASE_IMAGE="$2"; shift 2 ;;
    --tfx) WITH_TFX=1; shift ;;
    *) echo "usage: $0 [--base IMAGE] [--tfx]" >&2; exit 2 ;;
  esac
done

PY="$REPO/.venv/bin/python"
[ -x "$PY" ] || PY="$(command -v python3)"
VERSION="$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$REPO/components/__init__.py")"
IMAGE="kfp-tfserving-runtime:$VERSION"

pip_setting() {  # $1: environment variable, $2: pip config key; prints the value (may be empty)
  local value="${!1:-}"
  [ -n "$value" ] || value="$("$PY" -m pip config get "global.$2" 2>/dev/null || true)"
  [ -n "$value" ] || value="$("$PY" -m pip config get "install.$2" 2>/dev/null || true)"
  echo "$value"
}
http_only() { tr ' \n' '\n\n' | grep -E '^https?://' | tr '\n' ' ' | sed 's/ $//' || true; }

INDEX_URL="$(pip_setting PIP_INDEX_URL index-url | http_only)"
EXTRA_INDEX_URLS="$(pip_setting PIP_EXTRA_INDEX_URL extra-index-url | http_only)"
TRUSTED_HOSTS="$(pip_setting PIP_TRUSTED_HOST trusted-host | tr '\n' ' ')"

CONTEXT="$(mktemp -d)"
trap 'rm -rf "$CONTEXT"' EXIT
mkdir -p "$CONTEXT/wheels" "$CONTEXT/ca"
cp "$REPO/containers/runtime/Dockerfile" "$CONTEXT/"
PYTHONWARNINGS=ignore "$PY" -m pip wheel --quiet --no-deps --no-build-isolation -w "$CONTEXT/wheels" "$REPO"
# The wheel's own dependency list, so the heavy dependency layer is cached across code changes.
"$PY" - "$CONTEXT" <<'PY'
import sys, zipfile, pathlib
ctx = pathlib.Path(sys.argv[1])
(wheel,) = (ctx / "wheels").glob("kfp_tfserving-*.whl")
with zipfile.ZipFile(wheel) as z:
    meta = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode()
reqs = [l.split(":", 1)[1].strip() for l in meta.splitlines() if l.startswith("Requires-Dist:")]
(ctx / "requirements.txt").write_text("".join(r + "\n" for r in reqs if "extra ==" not in r))
PY

CA_BUNDLE="$(pip_setting PIP_CERT cert)"
[ -n "$CA_BUNDLE" ] || CA_BUNDLE="${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}"
[ -f "$CA_BUNDLE" ] && cp "$CA_BUNDLE" "$CONTEXT/ca/build-host-bundle.crt"
shopt -s nullglob
for cert in "$REPO"/containers/runtime/ca/*.crt; do cp "$cert" "$CONTEXT/ca/"; done

LOG="$REPO/.cache/container/build.log"
mkdir -p "$(dirname "$LOG")"
echo "building $IMAGE from $BASE_IMAGE (log: $LOG)"
docker build --network=host \
  --build-arg "BASE_IMAGE=$BASE_IMAGE" \
  --build-arg "INDEX_URL=$INDEX_URL" \
  --build-arg "EXTRA_INDEX_URLS=$EXTRA_INDEX_URLS" \
  --build-arg "TRUSTED_HOSTS=$TRUSTED_HOSTS" \
  -t "$IMAGE" "$CONTEXT" >"$LOG" 2>&1 || { tail -n 40 "$LOG" >&2; echo "image build failed; log: $LOG" >&2; exit 1; }
echo "built $IMAGE"

[ -n "$WITH_TFX" ] || exit 0
TFX_IMAGE="kfp-tfserving-tfx:$VERSION"
TFX_CONTEXT="$(mktemp -d)"
trap 'rm -rf "$CONTEXT" "$TFX_CONTEXT"' EXIT
cp "$REPO"/containers/tfx/Dockerfile "$REPO"/containers/tfx/requirements*.txt "$TFX_CONTEXT/"
echo "building $TFX_IMAGE from $IMAGE (log: $LOG)"
docker build --network=host \
  --build-arg "RUNTIME_IMAGE=$IMAGE" \
  --build-arg "INDEX_URL=$INDEX_URL" \
  --build-arg "EXTRA_INDEX_URLS=$EXTRA_INDEX_URLS" \
  --build-arg "TRUSTED_HOSTS=$TRUSTED_HOSTS" \
  -t "$TFX_IMAGE" "$TFX_CONTEXT" >>"$LOG" 2>&1 || { tail -n 40 "$LOG" >&2; echo "image build failed; log: $LOG" >&2; exit 1; }
echo "built $TFX_IMAGE"
