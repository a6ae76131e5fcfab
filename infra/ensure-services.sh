#!/usr/bin/env bash
# Make sure everything the integration tests talk to is running on this machine:
# NATS with JetStream (127.0.0.1:4222), Redis (127.0.0.1:6379) and a Docker engine.
# Usage: bash infra/ensure-services.sh [--no-docker]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

with_docker=1
for arg in "$@"; do
  case "$arg" in
    --no-docker) with_docker=0 ;;
    -h | --help)
      sed -n '2,4p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "ensure-services: unknown argument: $arg (use --no-docker)" >&2
      exit 2
      ;;
  esac
done

bash "$here/ensure-nats.sh"
bash "$here/ensure-redis.sh"
if ((with_docker)); then
  bash "$here/ensure-docker.sh"
fi
