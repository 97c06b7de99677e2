#!/usr/bin/env bash
# Memorization metrics (issue 5) on the full-width ResNet9 and real CIFAR-10
# images (the JPEG ImageFolder archive, read in place), memloc vs PyTorch in
# the same run on the same machine:
#   metrics_unitmem        UnitMem over 5,000 training images x 10 augmented
#                          views, every tap -> views/s; peer: the batched
#                          PyTorch implementation (bench/peer_metrics.py)
#   metrics_layermem       SSLMem at every tap + the LayerMem table over 500
#                          candidates x 5 augmentations for f and g -> candidates/s
#   *_vs_reference_loop    the same against the reference code's loops (one
#                          image per forward), timed on BENCH_METRICS_REF_POINTS
#                          images / BENCH_METRICS_REF_CANDIDATES candidates and
#                          extrapolated (rates do not depend on the count)
#   metrics_unitmem_peak_rss  peak RSS of UnitMem --rest mean over 50,000
#                          points ("memloc=") vs over 5,000 points ("peer=", the
#                          same memloc run on fewer points, not PyTorch), both
#                          with the whole 50,000-image set open and K = 1 (the
#                          metric's memory does not depend on K); ratio ~1: no
#                          growth with the number of points
# One run each (these are long); BENCH_METRICS_* override the sizes.
# OpenMP threads sleep instead of spinning at barriers (OMP_WAIT_POLICY=
# passive, BENCH_OMP_WAIT_POLICY overrides) for memloc and the peer alike: on
# a shared machine whose cores are busy, spinning threads of both made every
# run 5-10x slower and the timings meaningless.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
peer_env >/dev/null
export OMP_WAIT_POLICY=${BENCH_OMP_WAIT_POLICY:-passive}
T=${BENCH_THREADS:-2}
TAR=${BENCH_CIFAR_TAR:-$(cd "$MLOC_SOURCE/.." && pwd)/shared/data/cifar10-jpeg.tar.gz}
[ -r "$TAR" ] || { echo "metrics.sh: $TAR not found (set BENCH_CIFAR_TAR)" >&2; exit 1; }
DATA=folder:$TAR/train
N=${BENCH_METRICS_POINTS:-5000}
K=${BENCH_METRICS_K:-10}
C=${BENCH_METRICS_CANDIDATES:-500}
KS=${BENCH_METRICS_K_SSL:-5}
REF_N=${BENCH_METRICS_REF_POINTS:-200}
REF_C=${BENCH_METRICS_REF_CANDIDATES:-30}
MEM_SMALL=${BENCH_METRICS_MEMORY_SMALL:-5000}
MEM_LARGE=${BENCH_METRICS_MEMORY_LARGE:-50000}
PEER=(/usr/bin/python3 "$here/peer_metrics.py" --tar "$TAR" --threads "$T")
echo "metrics: $DATA, threads $T, OMP_WAIT_POLICY=$OMP_WAIT_POLICY, load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2

value() { sed -n "s/^$1=\([0-9.]*\).*/\1/p"; }

# UnitMem
out=$("$MLOC_BUILD/bench_metrics" --data "$DATA" --mode unitmem --points "$N" --k "$K" --threads "$T")
echo "$out" >&2
m_u=$(echo "$out" | sed -n 's/^bench metrics_unitmem memloc=\([0-9.]*\).*/\1/p')
out=$("${PEER[@]}" --only unitmem --points "$N" --k "$K")
echo "$out" >&2
p_u=$(echo "$out" | value "peer metrics_unitmem")
out=$("${PEER[@]}" --only ref-unitmem --ref-points "$REF_N" --points "$N" --k "$K")
echo "$out" >&2
r_u=$(echo "$out" | value "peer metrics_unitmem_ref")

# LayerMem
out=$("$MLOC_BUILD/bench_metrics" --data "$DATA" --mode layermem --points "$C" --k "$KS" --threads "$T")
echo "$out" >&2
m_l=$(echo "$out" | sed -n 's/^bench metrics_layermem memloc=\([0-9.]*\).*/\1/p')
out=$("${PEER[@]}" --only layermem --points "$C" --k "$KS")
echo "$out" >&2
p_l=$(echo "$out" | value "peer metrics_layermem")
out=$("${PEER[@]}" --only ref-layermem --ref-points "$REF_C" --points "$C" --k "$KS")
echo "$out" >&2
r_l=$(echo "$out" | value "peer metrics_layermem_ref")

# peak memory of UnitMem --rest mean: 5,000 vs 50,000 points of the same open set
rss=()
for n in "$MEM_SMALL" "$MEM_LARGE"; do
  out=$("$MLOC_BUILD/bench_metrics" --data "$DATA" --mode memory --points "$n" --k 1 --threads "$T")
  echo "$out" >&2
  rss+=($(echo "$out" | sed -n 's/^bench metrics_unitmem_rss .*rss_mb=\([0-9.]*\).*/\1/p'))
done

summary metrics_unitmem "$m_u" "$p_u" views/s
summary metrics_unitmem_vs_reference_loop "$m_u" "$r_u" views/s
summary metrics_layermem "$m_l" "$p_l" candidates/s
summary metrics_layermem_vs_reference_loop "$m_l" "$r_l" candidates/s
summary metrics_unitmem_peak_rss "${rss[1]}" "${rss[0]}" MB lower
