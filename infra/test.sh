#!/usr/bin/env bash
# `npm test`: start the services the tests need, build, then run jest (unit + integration).
# Extra arguments go to jest, e.g. `npm test -- --selectProjects unit`.
# Env: CAPSTAN_TEST_NO_DOCKER=1  skip starting dockerd (docker-backed tests skip themselves)
#      NATS_URL, REDIS_URL        override the local services (defaults below)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if [[ ! -x node_modules/.bin/node || ! -x node_modules/.bin/jest ]]; then
  echo "test: installing dependencies (first run)" >&2
  npm install --no-audit --no-fund
fi
# The project's pinned Node (npm devDependency `node`) comes first, whatever node npm runs on.
export PATH="$root/node_modules/.bin:$PATH"
bash infra/ensure-native.sh

bash infra/ensure-nats.sh
bash infra/ensure-redis.sh
if [[ "${CAPSTAN_TEST_NO_DOCKER:-0}" != "1" ]]; then
  bash infra/ensure-docker.sh
fi

export NATS_URL="${NATS_URL:-nats://127.0.0.1:4222}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"

# Integration tests spawn `node dist/...` processes, so compile first (tsc also type-checks).
npm run build --silent
exec jest --ci "$@"
