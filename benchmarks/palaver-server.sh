#!/bin/bash
# Starts one Palaver process for a benchmark on a fresh SQLite data directory, with the
# rate limits raised out of the load generator's way. It `exec`s the server, so the pid
# the harness measures is the server's own.
#   palaver-server.sh PORT [extra `palaver serve` flags]
# Data directories go under $BENCH_PALAVER_TMP (default /tmp), one per start. (Palaver refuses
# unknown PALAVER_* variables, so the benchmark's own knobs are named BENCH_*.)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
port=${1:-8765}; shift || true
data=$(mktemp -d -p "${BENCH_PALAVER_TMP:-/tmp}" palaver-bench.XXXXXX)
export PALAVER_RATE_MESSAGES_BURST=${PALAVER_RATE_MESSAGES_BURST:-100000}
export PALAVER_RATE_MESSAGES_PER_SECOND=${PALAVER_RATE_MESSAGES_PER_SECOND:-100000}
export PALAVER_MAX_CONNECTIONS_PER_IP=${PALAVER_MAX_CONNECTIONS_PER_IP:-100000}
export PALAVER_LOG_LEVEL=${PALAVER_LOG_LEVEL:-warning}
exec "$root/.venv/bin/palaver" serve --host 127.0.0.1 --port "$port" --data-dir "$data" "$@"
