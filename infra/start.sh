#!/usr/bin/env bash
# `npm start`: Capstan's embedded default in one process (gateway + every service, LMDB store in
# ./data, HTTPS on :9443, tunnel port :8000). Installs dependencies on a fresh clone, builds, runs.
# Any CAPSTAN_* variable from the README applies.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
CAPSTAN_INFRA_TAG=start
# shellcheck source=infra/lib.sh
source infra/lib.sh
use_project_node "$root" tsc
npm run build --silent
exec node dist/services/main.js
