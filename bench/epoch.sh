#!/usr/bin/env bash
# One SimCLR training epoch over 45,000 CIFAR-10 training images with the
# data pipeline (decoding, two augmented views per image, batching) included:
# memloc train vs the PyTorch peer (torchvision ImageFolder + DataLoader with 2
# workers), same model, batch 256, Adam, same machine, same run.
# Timed: the epoch loop (memloc: log.jsonl "seconds"; peer: its loop), so
# the one-off costs (memloc reading the archive, the peer's tar extraction)
# are left out on both sides.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
peer_env >/dev/null
ARCHIVE=${CIFAR_JPEG:-$MLOC_SOURCE/../shared/data/cifar10-jpeg.tar.gz}
[ -f "$ARCHIVE" ] || { echo "epoch: $ARCHIVE not found (set CIFAR_JPEG)" >&2; exit 66; }
N=${EPOCH_IMAGES:-45000}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
reps=${BENCH_EPOCH_REPS:-1}
m=(); p=()
for r in $(seq "$reps"); do
  "$MLOC_BUILD/memloc" train --data "folder:$ARCHIVE/train@0:$N" --epochs 1 --threads "${BENCH_THREADS:-2}" \
      --workers 2 --out "$TMP/run$r" --quiet
  s=$(grep '"type":"epoch"' "$TMP/run$r/log.jsonl" | sed 's/.*"seconds":\([0-9.e+-]*\).*/\1/')
  echo "memloc: epoch of $N images in $s s" >&2
  m+=("$s")
done
tar -xzf "$ARCHIVE" -C "$TMP"
for r in $(seq "$reps"); do
  out=$(/usr/bin/python3 "$here/peer_epoch.py" "$TMP/cifar10-jpeg/train" "$N" --threads "${BENCH_THREADS:-2}" --workers 2)
  echo "$out" >&2
  p+=($(echo "$out" | sed -n 's/^peer epoch_seconds=\([0-9.]*\).*/\1/p'))
done
summary cifar10_simclr_epoch_45k "$(printf '%s\n' "${m[@]}" | median)" "$(printf '%s\n' "${p[@]}" | median)" s lower
