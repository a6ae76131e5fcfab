#!/usr/bin/env bash
# Make sure a NATS server with JetStream answers on 127.0.0.1:4222.
# Idempotent: does nothing when one is already there. Installs Debian's nats-server if missing
# (root only). Quiet on success; CAPSTAN_INFRA_VERBOSE=1 for progress notes.
set -euo pipefail
CAPSTAN_INFRA_TAG=ensure-nats
# shellcheck source=infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

HOST=127.0.0.1
PORT="${CAPSTAN_NATS_PORT:-4222}"
STORE_DIR=/var/lib/nats-server
LOG_FILE=/var/log/nats-server.log
if [[ "$PORT" != 4222 ]]; then # a second server must not share the JetStream store
  STORE_DIR="/var/lib/nats-server-$PORT"
  LOG_FILE="/var/log/nats-server-$PORT.log"
fi
PID_FILE="/run/capstan-nats-server-$PORT.pid"

# The INFO line a NATS server sends on connect says whether JetStream is on.
nats_info() {
  local line=""
  exec 3<>"/dev/tcp/${HOST}/${PORT}" || return 1
  IFS= read -r -t 3 line <&3 || true
  exec 3<&- 3>&-
  printf '%s' "$line"
}

check_jetstream() {
  local info
  info="$(nats_info 2>/dev/null || true)"
  case "$info" in
    INFO*'"jetstream":true'*) return 0 ;;
    INFO*) die "the NATS server on ${HOST}:${PORT} runs without JetStream; restart it with -js" ;;
    *) die "something answers on ${HOST}:${PORT} but it is not a NATS server (no INFO line)" ;;
  esac
}

if port_open "$HOST" "$PORT"; then
  check_jetstream
  info "NATS already running on ${HOST}:${PORT}"
  exit 0
fi

NATS_BIN="$(command -v nats-server || true)"
if [[ -z "$NATS_BIN" && -x /usr/sbin/nats-server ]]; then
  NATS_BIN=/usr/sbin/nats-server
fi
if [[ -z "$NATS_BIN" ]]; then
  apt_install nats-server
  NATS_BIN="$(command -v nats-server || echo /usr/sbin/nats-server)"
  [[ -x "$NATS_BIN" ]] || die "nats-server is still missing after apt-get install"
fi

require_root "starting nats-server"
mkdir -p "$STORE_DIR" "$(dirname "$LOG_FILE")"
command -v start-stop-daemon >/dev/null 2>&1 || die "start-stop-daemon not found (package dpkg)"
# The pid file scopes --oknodo to the server this script started (not any nats-server).
start-stop-daemon --start --oknodo --background --make-pidfile --pidfile "$PID_FILE" \
  --exec "$NATS_BIN" -- \
  -a "$HOST" -p "$PORT" -js -sd "$STORE_DIR" -l "$LOG_FILE"

if ! wait_for 15 "NATS on ${HOST}:${PORT}" port_open "$HOST" "$PORT"; then
  tail -n 20 "$LOG_FILE" >&2 2>/dev/null || true
  die "nats-server did not start listening on ${HOST}:${PORT} within 15 s (log: $LOG_FILE)"
fi
check_jetstream
info "NATS started on ${HOST}:${PORT} with JetStream"
