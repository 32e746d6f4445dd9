#!/usr/bin/env bash
# The recipe table of docs/benchmarks.md: AMUN (`small`, on the covariate prior) trained with
# each recipe in this folder and three seeds on the demo's eight training months, scored
# against the fine truth of its four test months (2, 5, 8, 11), pooled RMSE.
#
# Usage: benches/recipes/run.sh AMUN WORLD WORLD_SEED OUT [RECIPES…]
#   AMUN        an `amun` binary (cargo build --release -p amun-cli → target/release/amun)
#   WORLD       default | relief (`amun synth --world`)
#   WORLD_SEED  the world's seed (the demo's world: default 42)
#   OUT         scratch folder; results.tsv collects one line per run
#   RECIPES     recipe names (default: every *.toml here)
# Recipes are compared at equal compute (patches through the network), not equal wall time,
# so that a shared machine does not bias them: each TOML sets its epochs for the demo's
# budget of 20 epochs at stride 32. The wall time of each run is recorded beside it.
# SEEDS="1 2 3" by default. BUDGET=0.5 scales every recipe's epochs by one factor (rounded,
# at least 1): the table of docs/benchmarks.md ran at half the demo's budget to fit a session.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
amun="$1"; world="$2"; wseed="$3"; out="$4"; shift 4
recipes=("$@")
if [ ${#recipes[@]} -eq 0 ]; then
  for f in "$here"/*.toml; do recipes+=("$(basename "$f" .toml)"); done
fi
seeds=${SEEDS:-1 2 3}
mkdir -p "$out"
w="$out/world-$world-$wseed"
if [ ! -d "$w/month-12" ]; then
  "$amun" synth --out "$w" --size 320 --world "$world" --seed "$wseed" \
    --months 1,2,3,4,5,6,7,8,9,10,11,12 --stations 0 --force >/dev/null
fi
train=()
for m in 01 03 04 06 07 09 10 12; do train+=("$w/month-$m"); done
tsv="$out/results.tsv"
[ -e "$tsv" ] || printf 'world\tworld_seed\trecipe\tseed\tepochs_run\ttrain_s\tval_rmse_k\ttest_rmse_k\tm02\tm05\tm08\tm11\n' >"$tsv"
for r in "${recipes[@]}"; do
  for s in $seeds; do
    if grep -q "^$world	$wseed	$r	$s	" "$tsv"; then continue; fi
    ck="$out/ck-$world-$wseed-$r-$s"
    epochs=$(sed -n 's/^epochs *= *\([0-9]*\).*/\1/p' "$here/$r.toml")
    epochs=$(python3 -c "print(max(1, round($epochs * ${BUDGET:-1})))")
    t0=$(date +%s.%N)
    "$amun" train --config "$here/$r.toml" --base prior-covariates --scenes "${train[@]}" \
      --out "$ck" --seed "$s" --epochs "$epochs" --force 2>"$out/train-$world-$r-$s.log" >/dev/null
    t1=$(date +%s.%N)
    meta=$(python3 - "$ck/checkpoint.json" <<'PY'
import json, sys, math
m = json.load(open(sys.argv[1]))
h = m.get("history") or m.get("meta", {}).get("history") or []
best = min((r["val_rmse_k"] for r in h if r["val_rmse_k"] == r["val_rmse_k"]), default=math.nan)
print(len(h), f"{best:.4f}")
PY
)
    rmse=()
    for m in 02 05 08 11; do
      "$amun" downscale --checkpoint "$ck" --scene "$w/month-$m" --out "$out/p.tif" --force 2>/dev/null >/dev/null
      rmse+=("$("$amun" evaluate --prediction "$out/p.tif" --reference "$w/month-$m/lst_reference.tif" --json 2>/dev/null \
        | python3 -c 'import json,sys; print("%.4f" % json.load(sys.stdin)["reference"]["rmse"])')")
    done
    pooled=$(python3 -c 'import sys,math; v=[float(x) for x in sys.argv[1:]]; print("%.4f" % math.sqrt(sum(x*x for x in v)/len(v)))' "${rmse[@]}")
    printf '%s\t%s\t%s\t%s\t%s\t%.1f\t%s\t%s\t%s\t%s\t%s\t%s\n' "$world" "$wseed" "$r" "$s" ${meta% *} \
      "$(echo "$t1 - $t0" | bc)" "${meta#* }" "$pooled" "${rmse[@]}" | tee -a "$tsv"
    rm -rf "$ck"
  done
done
