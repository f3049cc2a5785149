#!/usr/bin/env bash
# `make up`: the emulator and the three services in the foreground with one log stream (honcho).
# Ctrl-C stops them, then Kafka and PostgreSQL, so nothing of the stack is left running.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/../.."
bash "$here/infra.sh" up >/dev/null
trap 'bash "$here/infra.sh" down' EXIT
"$here/with-env.sh" "${UV:-uv}" run honcho start -f Procfile
