#!/usr/bin/env bash
# ViT-Tiny (width 192, depth 12, 3 heads) on 3x32x32 with patch 4, fp32: an
# MAE step (128 images, 16 of 64 patches visible, decoder 128 wide, 2 blocks,
# AdamW) and an eval forward of 128 images returning every tap; memloc vs the
# PyTorch peer (bench/peer_vit.py), BENCH_REPS times each, medians.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
peer_env >/dev/null
reps=${BENCH_REPS:-5}
m_mae=(); m_eval=(); p_mae=(); p_eval=()
for r in $(seq "$reps"); do
  out=$("$MLOC_BUILD/bench_vit" --threads "${BENCH_THREADS:-2}" --reps 5)
  echo "$out" | grep -v '^bench' >&2
  m_mae+=($(echo "$out" | sed -n 's/^bench vit_tiny_mae memloc=\([0-9.]*\).*/\1/p'))
  m_eval+=($(echo "$out" | sed -n 's/^bench vit_tiny_eval memloc=\([0-9.]*\).*/\1/p'))
  out=$(/usr/bin/python3 "$here/peer_vit.py" --threads "${BENCH_THREADS:-2}" --reps 5)
  echo "$out" | grep -v '^peer' >&2
  p_mae+=($(echo "$out" | sed -n 's/^peer vit_tiny_mae=\([0-9.]*\)/\1/p'))
  p_eval+=($(echo "$out" | sed -n 's/^peer vit_tiny_eval=\([0-9.]*\)/\1/p'))
done
summary vit_tiny_mae_step "$(printf '%s\n' "${m_mae[@]}" | median)" "$(printf '%s\n' "${p_mae[@]}" | median)" images/s
summary vit_tiny_eval_forward "$(printf '%s\n' "${m_eval[@]}" | median)" "$(printf '%s\n' "${p_eval[@]}" | median)" images/s
