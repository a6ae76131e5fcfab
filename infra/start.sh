#!/usr/bin/env bash
# `npm start`: Capstan's embedded default in one process (gateway + every service, LMDB store in
# ./data, HTTPS on :9443, tunnel port :8000). Installs dependencies on a fresh clone, builds, runs.
# Any CAPSTAN_* variable from the README applies.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if [[ ! -x node_modules/.bin/node || ! -x node_modules/.bin/tsc ]]; then
  echo "start: installing dependencies (first run)" >&2
  npm install --no-audit --no-fund
fi
export PATH="$root/node_modules/.bin:$PATH"
bash infra/ensure-native.sh
npm run build --silent
exec node dist/services/main.js
