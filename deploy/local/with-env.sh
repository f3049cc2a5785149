#!/usr/bin/env bash
# Run a command with the local stack's connection settings exported (see infra.sh env).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
set -a
eval "$(bash "$here/infra.sh" env)"
set +a
exec "$@"
