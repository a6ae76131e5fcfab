#!/usr/bin/env bash
# Make sure a Redis server answers on 127.0.0.1:6379 (nothing persisted to disk).
# Idempotent: does nothing when one is already there. Installs Debian's redis-server if
# missing (root only). Quiet on success; CAPSTAN_INFRA_VERBOSE=1 for progress notes.
set -euo pipefail
CAPSTAN_INFRA_TAG=ensure-redis
# shellcheck source=infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

HOST=127.0.0.1
PORT="${CAPSTAN_REDIS_PORT:-6379}"
DATA_DIR=/var/lib/redis
LOG_DIR=/var/log/redis

# PING without redis-cli, so the check works before redis-tools is installed.
redis_ping() {
  local line=""
  if command -v redis-cli >/dev/null 2>&1; then
    [[ "$(timeout 3 redis-cli -h "$HOST" -p "$PORT" ping 2>/dev/null)" == "PONG" ]]
    return
  fi
  exec 3<>"/dev/tcp/${HOST}/${PORT}" || return 1
  printf 'PING\r\n' >&3
  IFS= read -r -t 3 line <&3 || true
  exec 3<&- 3>&-
  [[ "${line%$'\r'}" == "+PONG" ]]
}

if port_open "$HOST" "$PORT"; then
  redis_ping || die "something answers on ${HOST}:${PORT} but does not reply PONG to PING"
  info "Redis already running on ${HOST}:${PORT}"
  exit 0
fi

if ! command -v redis-server >/dev/null 2>&1; then
  apt_install redis-server
  command -v redis-server >/dev/null 2>&1 || die "redis-server is still missing after apt-get install"
  # The package's postinst may have started its own instance already.
  if wait_for 3 "Redis" redis_ping; then
    exit 0
  fi
fi

require_root "starting redis-server"
mkdir -p "$DATA_DIR" "$LOG_DIR"
if id redis >/dev/null 2>&1; then
  chown redis:redis "$DATA_DIR" "$LOG_DIR" 2>/dev/null || true
fi
redis-server --daemonize yes --bind "$HOST" -::1 --port "$PORT" --save "" --appendonly no \
  --dir "$DATA_DIR" --logfile "$LOG_DIR/ci.log" >/dev/null

if ! wait_for 15 "Redis on ${HOST}:${PORT}" redis_ping; then
  tail -n 20 "$LOG_DIR/ci.log" >&2 2>/dev/null || true
  die "redis-server did not answer PING on ${HOST}:${PORT} within 15 s (log: $LOG_DIR/ci.log)"
fi
info "Redis started on ${HOST}:${PORT}"
