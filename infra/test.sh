#!/usr/bin/env bash
# `npm test`: start the services the tests need, build, then run jest (unit + integration).
# Extra arguments go to jest, e.g. `npm test -- --selectProjects unit`.
# Env: CAPSTAN_TEST_NO_DOCKER=1  skip starting dockerd (docker-backed tests skip themselves)
#      NATS_URL, REDIS_URL        override the local services (defaults below)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

CAPSTAN_INFRA_TAG=test
# shellcheck source=infra/lib.sh
source infra/lib.sh
use_project_node "$root" jest

bash infra/ensure-nats.sh
bash infra/ensure-redis.sh
if [[ "${CAPSTAN_TEST_NO_DOCKER:-0}" != "1" ]]; then
  bash infra/ensure-docker.sh
  # Docker-backed unit tests (agent/async/commands.spec.ts) run containers from it too.
  bash infra/ensure-test-image.sh
fi

export NATS_URL="${NATS_URL:-nats://127.0.0.1:4222}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"

# Integration tests spawn `node dist/...` processes, so compile first (tsc also type-checks).
npm run build --silent
exec jest --ci "$@"
