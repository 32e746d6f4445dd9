#!/usr/bin/env bash
# Times `amun downscale` with and without flush-to-zero, alternating, on a checkpoint with
# subnormal weights and on the checkpoint it was made from (see
# docs/benchmarks/amun-kernels.md, "Flush-to-zero").
#
# Usage: downscale_ab.sh AMUN_WITHOUT AMUN_WITH SCENE_DIR SUBNORMAL_CKPT PLAIN_CKPT [ROUNDS]
#
# AMUN_WITHOUT is an `amun` built with the `amun_core::flush_denormals();` line of
# crates/cli/src/main.rs commented out, AMUN_WITH the normal build. Prints one line per run:
# round, binary, checkpoint, wall s, user s, sys s, peak resident KiB, 1-minute load average.
# The outputs of each pair are compared byte for byte.
set -euo pipefail
without=$1 with=$2 scene=$3 sub=$4 plain=$5 rounds=${6:-3}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "round binary checkpoint wall_s user_s sys_s maxrss_kib load1"
for i in $(seq 1 "$rounds"); do
  for ck in sub plain; do
    dir=$sub
    [ "$ck" = plain ] && dir=$plain
    for bin in without with; do
      exe=$without
      [ "$bin" = with ] && exe=$with
      /usr/bin/time -f "%e %U %S %M" -o "$out/time" \
        "$exe" downscale -q --checkpoint "$dir" --scene "$scene" --out "$out/$bin-$ck.tif" --force
      echo "$i $bin $ck $(cat "$out/time") $(cut -d' ' -f1 /proc/loadavg)"
    done
    if cmp -s "$out/without-$ck.tif" "$out/with-$ck.tif"; then
      echo "# $ck: outputs identical"
    else
      echo "# $ck: outputs differ"
    fi
  done
done
