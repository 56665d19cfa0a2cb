#!/usr/bin/env bash
# run.sh - the property studies and the paper's ranked functions of
# docs/search.md, trained with `python -m dnc.search` on a local two-CPU Ray
# cluster started here (and stopped at the end, by its own process), then
# examples/search/study/report.py for the table, the Spearman correlations
# and the plot.
#
#   nice -n 10 bash examples/search/study/run.sh [OUT]     (default build/study)
#
# DIGITS_STEPS, DIGITS_SEEDS, LM_STEPS, LM_SEEDS set the budgets.
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT="${1:-build/study}"
PY=.venv/bin/python
mkdir -p "$OUT"
export PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}"
# a loopback cluster of our own: without Ray's token (the token file of
# ~/.ray is shared with whatever else runs ray start on this machine)
export RAY_AUTH_MODE=disabled
port=$($PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
.venv/bin/ray start --head --block --node-ip-address=127.0.0.1 --port="$port" \
  --num-cpus=2 --include-dashboard=false >"$OUT/ray.log" 2>&1 &
ray_pid=$!
trap 'kill $ray_pid 2>/dev/null; wait $ray_pid 2>/dev/null' EXIT
up=0
for i in $(seq 20); do
  timeout 60 $PY -c "import ray; ray.init(address='127.0.0.1:$port', logging_level=40); ray.shutdown()" \
    2>/dev/null && { up=1; break; }
  sleep 2
done
[ $up = 1 ] || { echo "run.sh: the Ray cluster at 127.0.0.1:$port did not come up ($OUT/ray.log)" >&2; exit 1; }
run() { # TASK NAME STEPS SEEDS [OPTIONS]
  local t0=$SECONDS
  $PY -m dnc.search "examples/search/study/$2.dns" --task "$1" \
    -o "$OUT/$1/$2" --top 100 --rungs 1 --steps "$3" --seeds "$4" \
    --address "127.0.0.1:$port" -q "${@:5}" >"$OUT/$1/$2.txt"
  echo "$1 $2: $((SECONDS - t0)) s" | tee -a "$OUT/times.txt"
}
for task in digits-vit char-lm; do
  mkdir -p "$OUT/$task"
  if [ $task = digits-vit ]; then steps=${DIGITS_STEPS:-400} seeds=${DIGITS_SEEDS:-3}
  else steps=${LM_STEPS:-200} seeds=${LM_SEEDS:-2}; fi
  run $task ranked "$steps" "$seeds"  # with the LayerNorm baseline
  for study in shift flat bounded monotonic; do
    run $task $study "$steps" "$seeds" --no-baseline
  done
done
$PY examples/search/study/report.py "$OUT"
