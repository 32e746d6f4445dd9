#!/usr/bin/env bash
# The per-task numbers of docs/cluster.md ("Resources"): wall time and peak memory of
# `amun prepare --series`, `amun downscale --series`, `amun downscale --rows` and `amun mosaic`
# on a synthetic series of STEPS hourly steps of SIZE×SIZE fine pixels (factor 10), with the
# `small` preset (trained for one epoch: the cost does not depend on the weights).
#   cargo build -p amun-cli && bash benches/cluster/measure.sh          # SIZE=2000 STEPS=4
# Needs GDAL's command-line tools (gdal_translate, gdalbuildvrt) to cut the synthetic scene
# into the input files a user would have, and GNU time (/usr/bin/time -v) for the peaks.
set -euo pipefail
cd "$(dirname "$0")/../.."
AMUN=${AMUN:-$PWD/target/debug/amun}
SIZE=${SIZE:-2000}
STEPS=${STEPS:-4}
TASKS=${TASKS:-2}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
# "label: N s, M MiB peak" from GNU time's report of one command.
measure() {
  local label=$1
  shift
  /usr/bin/time -v "$@" 2>"$W/time.txt" >/dev/null || { cat "$W/time.txt"; exit 1; }
  local wall rss
  wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$W/time.txt" |
    awk -F: '{ if (NF == 3) print $1*3600 + $2*60 + $3; else print $1*60 + $2 }')
  rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$W/time.txt")
  printf '%s: %.1f s, %d MiB peak\n' "$label" "$wall" $((rss / 1024))
}
echo "amun $($AMUN --version | cut -d' ' -f2), $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "series: $STEPS steps of ${SIZE}×${SIZE} fine pixels (factor 10)"

$AMUN -q synth --out "$W/world" --size "$SIZE" --factor 10 --months 7
scene=$W/world/month-07
mkdir -p "$W/in/ndvi"
i=1
for name in ndvi landcover reflectance mndwi ndbi slope aspect elevation; do  # the bands of covariates.tif
  gdal_translate -q -b $i "$scene/covariates.tif" "$W/in/$name.tif"
  i=$((i + 1))
done
mv "$W/in/ndvi.tif" "$W/in/ndvi/ndvi_2020-07.tif"
lst=()
times=()
for s in $(seq 0 $((STEPS - 1))); do
  lst+=("$scene/lst_coarse.tif")
  times+=("2020-07-01T$(printf %02d $((s % 24))):00")
done
gdalbuildvrt -q -separate "$W/lst.vrt" "${lst[@]}"
gdal_translate -q -co TILED=YES -co INTERLEAVE=BAND "$W/lst.vrt" "$W/lst.tif"

$AMUN -q synth --out "$W/train" --size 80 --factor 10 --months 7
$AMUN -q train --preset small --epochs 1 --scenes "$W/train/month-07" --out "$W/model"

measure "prepare, $STEPS steps (one process)" $AMUN -q prepare --lst "$W/lst.tif" \
  --times "$(IFS=,; echo "${times[*]}")" --factor 10 \
  --covariate-series "ndvi=$W/in/ndvi" --landcover "$W/in/landcover.tif" \
  --reflectance "$W/in/reflectance.tif" --mndwi "$W/in/mndwi.tif" --ndbi "$W/in/ndbi.tif" \
  --dem "$W/in/elevation.tif" --elevation \
  --out "$W/series"
mkdir "$W/fine" "$W/cog" "$W/bands"
measure "downscale, $STEPS steps (one process)" $AMUN downscale --checkpoint "$W/model" \
  --series "$W/series" --out "$W/fine"
echo "  ($((STEPS * SIZE * SIZE)) fine pixels; pixels/s = pixels / the time above)"
measure "downscale --cog, $STEPS steps (one process)" $AMUN -q downscale --checkpoint "$W/model" \
  --series "$W/series" --out "$W/cog" --cog
first=$(ls "$W/series" | grep -v json | head -n 1)
for t in $(seq 0 $((TASKS - 1))); do
  measure "downscale --rows, band $t of $TASKS of one step" $AMUN -q downscale \
    --checkpoint "$W/model" --scene "$W/series/$first" --rows --shard "$t/$TASKS" --out "$W/bands"
done
measure "mosaic of $TASKS row bands" $AMUN -q mosaic "$W/bands" --out "$W/joined.tif"
measure "mosaic of $TASKS row bands --cog" $AMUN -q mosaic "$W/bands" --out "$W/joined-cog.tif" --cog
