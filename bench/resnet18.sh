#!/usr/bin/env bash
# ResNet18 (torchvision, CIFAR stem) fp32: a SimCLR training step (2 x 128 views,
# Adam) and an eval forward of 128 images returning every tap; memloc vs the
# PyTorch peer.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
peer_env >/dev/null
reps=${BENCH_REPS:-5}
m_train=(); m_eval=(); p_train=(); p_eval=()
for r in $(seq "$reps"); do
  out=$("$MLOC_BUILD/bench_resnet18" --threads "${BENCH_THREADS:-2}" --reps 5)
  echo "$out" | grep -v '^bench' >&2
  m_train+=($(echo "$out" | sed -n 's/^bench resnet18_train memloc=\([0-9.]*\).*/\1/p'))
  m_eval+=($(echo "$out" | sed -n 's/^bench resnet18_eval memloc=\([0-9.]*\).*/\1/p'))
  out=$(/usr/bin/python3 "$here/peer_resnet18.py" --threads "${BENCH_THREADS:-2}" --reps 5)
  echo "$out" | grep -v '^peer' >&2
  p_train+=($(echo "$out" | sed -n 's/^peer resnet18_train=\([0-9.]*\)/\1/p'))
  p_eval+=($(echo "$out" | sed -n 's/^peer resnet18_eval=\([0-9.]*\)/\1/p'))
done
summary resnet18_train_step "$(printf '%s\n' "${m_train[@]}" | median)" "$(printf '%s\n' "${p_train[@]}" | median)" views/s
summary resnet18_eval_forward "$(printf '%s\n' "${m_eval[@]}" | median)" "$(printf '%s\n' "${p_eval[@]}" | median)" images/s
