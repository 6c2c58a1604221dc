#!/bin/bash
# The fan-out case, ws-node and Palaver interleaved, with hardware counters beside the
# harness's CPU time: `perf stat` counts the server's instructions and cycles over the
# DURATION seconds after the first send. CPU time moves by +-20% between identical runs
# on a shared virtual machine; the instruction count of a run moves by a few percent.
#   benchmarks/perf-fanout.sh [--repeat 3] [--duration 8] [--rooms 10 --members 100 --senders 2 --rate 25]
# Needs perf (Debian's linux-perf) with access to hardware counters. Prints one line per
# run, then medians per server with each figure's ratio to ws-node.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
bench=${BENCH_DIR:-$(cd "$root/../shared/bench" && pwd)}
port=${BENCH_PALAVER_PORT:-8765}
repeat=3 duration=8 rest=()
while (($#)); do
  case $1 in
    --repeat) repeat=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    *) rest+=("$1"); shift ;;
  esac
done
((${#rest[@]})) || rest=(--rooms 10 --members 100 --senders 2 --rate 25)
command -v perf >/dev/null || { echo "perf is not installed (Debian: linux-perf)" >&2; exit 2; }
[[ -d $bench/node_modules && -d $bench/.venv ]] || "$bench/setup.sh"
[[ -x $root/.venv/bin/palaver ]] || (cd "$root" && uv sync)
export BENCH_DIR=$bench
export BENCH_PALAVER_TMP=$(mktemp -d /tmp/palaver-bench-run.XXXXXX)
out=$BENCH_PALAVER_TMP/runs
trap 'rm -rf "$BENCH_PALAVER_TMP"' EXIT

one() { # label port server-command adapter
  local label=$1 p=$2 server=$3 adapter=$4
  local mark=$BENCH_PALAVER_TMP/mark counts=$BENCH_PALAVER_TMP/counts
  rm -f "$mark" "$counts"
  (
    while [[ ! -e $mark ]]; do sleep 0.02; done
    pid=$(ss -ltnpH "sport = :$p" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
    perf stat -x, -e instructions,cycles -p "$pid" -o "$counts" -- sleep "$duration"
  ) &
  local watcher=$!
  local line
  line=$(BENCH_PALAVER_MARK=$mark "$bench/run.sh" custom --server "$server" \
    --url "ws://127.0.0.1:$p/ws" --adapter "$adapter" --duration "$duration" "${rest[@]}")
  wait "$watcher"
  local ins cyc
  ins=$(grep ',instructions' "$counts" | cut -d, -f1)
  cyc=$(grep ',cycles' "$counts" | cut -d, -f1)
  echo "$label $ins $cyc $line" | tee -a "$out"
}

for ((i = 0; i < repeat; i++)); do
  one ws-node 7101 "node $bench/peers/ws-node.js" "$here/ws-marking-adapter.js"
  one palaver "$port" "$here/palaver-server.sh $port" "$here/palaver-adapter.js"
done

python3 - "$out" <<'PY'
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    label, ins, cyc, js = line.split(" ", 3)
    r = json.loads(js)
    n = r["deliveries_per_s"] * r["duration_s"]
    runs.setdefault(label, []).append(
        (r["server_cpu_us_per_delivery"], int(ins) / n, int(cyc) / n, r["p99_ms"], r["loss_pct"])
    )
med = {k: [statistics.median(x[i] for x in v) for i in range(5)] for k, v in runs.items()}
base = med["ws-node"]
print(f"{'server':8} {'cpu_us/deliv':>12} {'instr/deliv':>11} {'cycles/deliv':>12} {'p99ms':>7} {'loss%':>6}   ratios to ws-node (cpu, instr, cycles)  (median of {len(runs['ws-node'])})")
for k, m in med.items():
    ratios = ", ".join(f"{a / b:.2f}" for a, b in zip(m[:3], base[:3]))
    print(f"{k:8} {m[0]:>12.2f} {m[1]:>11.0f} {m[2]:>12.0f} {m[3]:>7.1f} {m[4]:>6.2f}   {ratios}")
PY
