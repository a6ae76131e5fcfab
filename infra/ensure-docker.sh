#!/usr/bin/env bash
# Make sure a Docker engine answers `docker info` on the default socket.
# Idempotent: does nothing when one already answers. Installs Debian's docker.io if dockerd is
# missing (root only) and starts dockerd without iptables or the default bridge (this machine
# has no container network and no reachable registry: nothing here pulls images).
# Quiet on success; CAPSTAN_INFRA_VERBOSE=1 for progress notes.
# Env: CAPSTAN_DOCKERD_ARGS  extra dockerd flags (e.g. "--storage-driver=vfs")
#      CAPSTAN_DOCKER_WAIT   seconds to wait for the engine (default 60)
set -euo pipefail
CAPSTAN_INFRA_TAG=ensure-docker
# shellcheck source=infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

LOG_FILE=/var/log/dockerd.log
WAIT="${CAPSTAN_DOCKER_WAIT:-60}"

docker_ok() { docker info >/dev/null 2>&1; }

find_dockerd() {
  local p
  p="$(command -v dockerd 2>/dev/null || true)"
  if [[ -z "$p" ]]; then
    for p in /usr/sbin/dockerd /usr/bin/dockerd /usr/local/bin/dockerd; do
      [[ -x "$p" ]] && break
      p=""
    done
  fi
  printf '%s' "$p"
}

if command -v docker >/dev/null 2>&1 && docker_ok; then
  info "Docker engine already running"
  exit 0
fi

DOCKERD="$(find_dockerd)"
if [[ -z "$DOCKERD" ]]; then
  apt_install docker.io
  DOCKERD="$(find_dockerd)"
  [[ -n "$DOCKERD" ]] || die "dockerd is still missing after apt-get install docker.io"
fi
command -v docker >/dev/null 2>&1 || die "the docker CLI is missing (install docker.io or docker-ce-cli)"

require_root "starting dockerd"
mkdir -p "$(dirname "$LOG_FILE")"

# Another dockerd may be starting already (e.g. a parallel run of this script): wait for it
# rather than starting a second one on the same data root.
if command -v pgrep >/dev/null 2>&1 && pgrep -x dockerd >/dev/null 2>&1; then
  info "dockerd is already running; waiting for it to answer"
  wait_for "$WAIT" "Docker engine" docker_ok && exit 0
  die "a dockerd process runs but \`docker info\` fails after ${WAIT} s (log: $LOG_FILE)"
fi

start_dockerd() {
  # shellcheck disable=SC2086 # CAPSTAN_DOCKERD_ARGS is a list of flags on purpose
  setsid nohup "$DOCKERD" --iptables=false --bridge=none "$@" ${CAPSTAN_DOCKERD_ARGS:-} \
    >>"$LOG_FILE" 2>&1 </dev/null &
  DOCKERD_PID=$!
}

dockerd_alive() { kill -0 "$DOCKERD_PID" 2>/dev/null; }
# Done waiting when the engine answers or dockerd has died.
ready_or_dead() { docker_ok || ! dockerd_alive; }

log_offset=$(stat -c %s "$LOG_FILE" 2>/dev/null || echo 0)
start_dockerd
wait_for "$WAIT" "Docker engine" ready_or_dead || true

# Some kernels/filesystems refuse overlay2; vfs is slow but works everywhere.
if ! docker_ok && ! dockerd_alive && [[ "${CAPSTAN_DOCKERD_ARGS:-}" != *storage-driver* ]] &&
  tail -c +"$((log_offset + 1))" "$LOG_FILE" | grep -qiE 'storage.driver|overlay|graphdriver'; then
  note "dockerd failed with the default storage driver; retrying with --storage-driver=vfs"
  start_dockerd --storage-driver=vfs
  wait_for "$WAIT" "Docker engine" ready_or_dead || true
fi

if ! docker_ok; then
  tail -n 30 "$LOG_FILE" >&2 2>/dev/null || true
  die "the Docker engine did not answer \`docker info\` within ${WAIT} s (log: $LOG_FILE)"
fi
info "Docker engine started (dockerd pid $DOCKERD_PID)"
