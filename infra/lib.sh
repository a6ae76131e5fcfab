# shellcheck shell=bash
# Shared helpers for the infra/ensure-*.sh scripts. Source it; do not run it.
# Every helper is quiet on success and writes its messages to stderr.

CAPSTAN_INFRA_TAG="${CAPSTAN_INFRA_TAG:-capstan-infra}"

# info MESSAGE... — progress note, printed only when CAPSTAN_INFRA_VERBOSE=1.
info() {
  if [[ "${CAPSTAN_INFRA_VERBOSE:-0}" == "1" ]]; then
    printf '%s: %s\n' "$CAPSTAN_INFRA_TAG" "$*" >&2
  fi
}

# note MESSAGE... — always printed (for slow steps such as installs).
note() { printf '%s: %s\n' "$CAPSTAN_INFRA_TAG" "$*" >&2; }

# die MESSAGE... — print an error and exit 1.
die() {
  printf '%s: error: %s\n' "$CAPSTAN_INFRA_TAG" "$*" >&2
  exit 1
}

# port_open HOST PORT — true when something accepts a TCP connection there.
port_open() {
  local host="$1" port="$2"
  if command -v timeout >/dev/null 2>&1; then
    timeout 2 bash -c "exec 3<>/dev/tcp/${host}/${port}" 2>/dev/null
  else
    (exec 3<>"/dev/tcp/${host}/${port}") 2>/dev/null
  fi
}

# wait_for SECONDS DESCRIPTION COMMAND... — poll COMMAND every 0.25 s until it succeeds.
wait_for() {
  local seconds="$1" what="$2"
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@"; do
    if ((SECONDS >= deadline)); then
      return 1
    fi
    sleep 0.25
  done
  info "$what is up"
}

# require_root WHAT — exit with a clear message unless running as root.
require_root() {
  if [[ "$(id -u)" != "0" ]]; then
    die "$1 needs root (apt-get install / starting a system daemon). Re-run as root, or start it yourself."
  fi
}

# apt_install PACKAGE... — install Debian packages non-interactively. Runs `apt-get update`
# at most once an hour across scripts (stamp file), and once more if the install fails on
# stale lists.
apt_install() {
  require_root "installing $*"
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install $* by hand"
  local stamp="${CAPSTAN_APT_STAMP:-/tmp/capstan-apt-updated}"
  export DEBIAN_FRONTEND=noninteractive
  if [[ -z "$(find "$stamp" -maxdepth 0 -mmin -60 2>/dev/null)" ]]; then
    note "apt-get update"
    apt-get update -qq >/dev/null || die "apt-get update failed"
    touch "$stamp"
  fi
  note "apt-get install $*"
  if ! apt-get install -y -qq --no-install-recommends "$@" >/dev/null; then
    note "install failed; refreshing package lists and retrying"
    apt-get update -qq >/dev/null || die "apt-get update failed"
    touch "$stamp"
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null || die "apt-get install $* failed"
  fi
}

# use_project_node ROOT BIN — install dependencies when node_modules/.bin lacks the pinned `node`
# or BIN (a fresh clone), put node_modules/.bin first on PATH so every step runs on the pinned
# Node whatever node npm runs on, and make ssh2's native crypto load on it.
use_project_node() {
  local root="$1" bin="$2"
  if [[ ! -x "$root/node_modules/.bin/node" || ! -x "$root/node_modules/.bin/$bin" ]]; then
    note "installing dependencies (first run)"
    (cd "$root" && npm install --no-audit --no-fund)
  fi
  export PATH="$root/node_modules/.bin:$PATH"
  bash "$root/infra/ensure-native.sh"
}
