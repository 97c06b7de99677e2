# Shared by the bench/*.sh scripts.
#   MLOC_BUILD   the build directory; MLOC_SOURCE the source tree
#   BENCH_REPS   repetitions for medians (default 5)

# The PyTorch peer's best configuration on this machine. Debian's torch runs
# its linear layers on OpenBLAS 0.3.21, whose CPU detection mistakes some
# recent CPUs as Prescott (FORMATS.md 6.2), and some machines preset
# OPENBLAS_CORETYPE to an older set. The peer gets the best kernel set the CPU
# supports (BENCH_OPENBLAS_CORETYPE overrides), and 2 threads like memloc.
peer_env() {
  if [ -n "${BENCH_OPENBLAS_CORETYPE:-}" ]; then export OPENBLAS_CORETYPE=$BENCH_OPENBLAS_CORETYPE
  elif grep -q avx512_bf16 /proc/cpuinfo; then export OPENBLAS_CORETYPE=Cooperlake
  elif grep -q avx512f /proc/cpuinfo; then export OPENBLAS_CORETYPE=SkylakeX
  else unset OPENBLAS_CORETYPE; fi
  export OMP_NUM_THREADS=${BENCH_THREADS:-2}
  echo "peer: OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-auto} OMP_NUM_THREADS=$OMP_NUM_THREADS torch threads ${BENCH_THREADS:-2}"
}

# median of numbers on stdin
median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) exit 1; if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

# summary NAME MEMLOC PEER UNIT [lower-is-better]
summary() {
  local ratio
  if [ "${5:-}" = lower ]; then ratio=$(awk -v a="$2" -v b="$3" 'BEGIN{printf "%.2f", b/a}')
  else ratio=$(awk -v a="$2" -v b="$3" 'BEGIN{printf "%.2f", a/b}'); fi
  echo "bench $1 memloc=$2 peer=$3 unit=$4 ratio=$ratio"
}

# encoder_bench ARCH: the SimCLR training step and the all-taps eval forward of
# bench_encoder against bench/peer_encoder.py, BENCH_REPS times each.
encoder_bench() {
  local arch=$1 reps=${BENCH_REPS:-5} out
  local m_train=() m_eval=() p_train=() p_eval=()
  for r in $(seq "$reps"); do
    out=$("$MLOC_BUILD/bench_encoder" --arch "$arch" --threads "${BENCH_THREADS:-2}" --reps 5)
    echo "$out" | grep -v '^bench' >&2
    m_train+=($(echo "$out" | sed -n "s/^bench ${arch}_train memloc=\([0-9.]*\).*/\1/p"))
    m_eval+=($(echo "$out" | sed -n "s/^bench ${arch}_eval memloc=\([0-9.]*\).*/\1/p"))
    out=$(/usr/bin/python3 "$MLOC_SOURCE/bench/peer_encoder.py" --arch "$arch" --threads "${BENCH_THREADS:-2}" --reps 5)
    echo "$out" | grep -v '^peer' >&2
    p_train+=($(echo "$out" | sed -n "s/^peer ${arch}_train=\([0-9.]*\)/\1/p"))
    p_eval+=($(echo "$out" | sed -n "s/^peer ${arch}_eval=\([0-9.]*\)/\1/p"))
  done
  summary "${arch}_train_step" "$(printf '%s\n' "${m_train[@]}" | median)" "$(printf '%s\n' "${p_train[@]}" | median)" views/s
  summary "${arch}_eval_forward" "$(printf '%s\n' "${m_eval[@]}" | median)" "$(printf '%s\n' "${p_eval[@]}" | median)" images/s
}
