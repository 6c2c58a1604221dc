#!/bin/bash
# Palaver side by side with the shared peers (ws-node, sio-node, sio-py) in one run:
# the same fan-out case, repeated and interleaved, then a table of medians.
#   benchmarks/run-palaver.sh [--repeat 3] [fan-out options: --rooms 10 --members 100 ...]
# Defaults: 10 rooms x 100 members, 2 senders per room at 25 msg/s, 8 s, 3 repeats.
# BENCH_DIR points at the shared harness (default ../shared/bench next to the repository).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
bench=${BENCH_DIR:-$(cd "$root/../shared/bench" && pwd)}
port=${BENCH_PALAVER_PORT:-8765}
[[ -d $bench/node_modules && -d $bench/.venv ]] || "$bench/setup.sh"
[[ -x $root/.venv/bin/palaver ]] || (cd "$root" && uv sync)
export BENCH_PALAVER_TMP=$(mktemp -d /tmp/palaver-bench-run.XXXXXX)
trap 'rm -rf "$BENCH_PALAVER_TMP"' EXIT
export BENCH_DIR=$bench
args=("$@")
# The issue's case unless the fan-out is given (--repeat alone does not change it).
fanout=0
for arg in "${args[@]}"; do
  case $arg in --rooms|--members|--senders|--rate|--duration|--size) fanout=1 ;; esac
done
((fanout)) || args+=(--rooms 10 --members 100 --senders 2 --rate 25 --duration 8)
"$bench/compare.sh" \
  --server "$here/palaver-server.sh $port" \
  --url "ws://127.0.0.1:$port/ws" \
  --adapter "$here/palaver-adapter.js" \
  "${args[@]}"
