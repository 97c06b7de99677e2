#!/usr/bin/env bash
# memloc layermem / sslmem / unitmem / classmem / analyze end to end on the
# metric fixtures' tiny encoders (ResNet9 width 0.125 on 16x16, f and g) and
# a synthetic dataset: the documented files with their headers and sizes,
# the same numbers for 1 and 2 threads, sslmem = layermem at the encoder
# output, a PyTorch-named weights file, and clear errors with non-zero exits
# for bad input.
#   metrics_cli.sh MEMLOC_BIN SOURCE_DIR
set -euo pipefail
BIN=$1
SRC=$2
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
FX=$SRC/tests/fixtures/metrics
F=$FX/f.safetensors
G=$FX/g.safetensors
DATA=synthetic:120:16x16x3:4
pair=(--f "$F" --g "$G" --data "$DATA" --candidates 60:120 --eval 40 --k 2 --seed 3 --quiet)

# expect CODE PATTERN CMD...: the command fails with CODE and says PATTERN
expect() {
  local code=$1 pattern=$2
  shift 2
  set +e
  "$@" >"$TMP/out" 2>"$TMP/err"
  local rc=$?
  set -e
  [ $rc = "$code" ] || { cat "$TMP/err" >&2; fail "'$*' exited $rc, expected $code"; }
  grep -q -- "$pattern" "$TMP/err" || { cat "$TMP/err" >&2; fail "'$*' did not say '$pattern'"; }
}

# ---- layermem ---------------------------------------------------------------
"$BIN" layermem "${pair[@]}" --random 10 --top 5 -j 2 --out "$TMP/lm" >"$TMP/table.txt"
for f in layermem.json layermem_table.csv layermem_points.csv layermem_points.npy layermem_sslmem.npy \
         layermem_norm.npy layermem_d_f.npy layermem_d_g.npy layermem_out.npy; do
  [ -s "$TMP/lm/$f" ] || fail "layermem did not write $f"
done
grep -q '"schema": "memloc.layermem/1"' "$TMP/lm/layermem.json" || fail "layermem.json has no schema"
grep -q '"views": "clean"' "$TMP/lm/layermem.json" || fail "layermem.json does not record the views"
grep -q '"norm": "range"' "$TMP/lm/layermem.json" || fail "layermem.json does not record the normalisation"
grep -q '"normalize_order": "augment, then normalize"' "$TMP/lm/layermem.json" || fail "no normalize order"
head -1 "$TMP/lm/layermem_table.csv" | grep -qx 'tap,layermem_random,delta,layermem_top,delta_top,layermem_least' \
  || fail "layermem_table.csv header"
[ "$(wc -l <"$TMP/lm/layermem_table.csv")" = 11 ] || fail "layermem_table.csv should have 10 taps"
[ "$(wc -l <"$TMP/lm/layermem_points.csv")" = 41 ] || fail "layermem_points.csv should have 40 points"
head -1 "$TMP/lm/layermem_points.csv" | grep -q '^index,rank,sslmem_out,prep,layer1_head,' || fail "points header"
grep -q '^res2 ' "$TMP/table.txt" || fail "the printed table has no res2 row"
grep -q 'DeltaTop-5' "$TMP/table.txt" || fail "the printed table has no DeltaTop-5 column"

# the same numbers with one thread and another batch size
"$BIN" layermem "${pair[@]}" --random 10 --top 5 -j 1 --batch 7 --out "$TMP/lm1" >/dev/null
for f in layermem_sslmem.npy layermem_d_f.npy layermem_d_g.npy layermem_table.csv; do
  cmp -s "$TMP/lm/$f" "$TMP/lm1/$f" || fail "$f differs between -j 2 and -j 1 --batch 7"
done

# pair views and minmax on two taps
"$BIN" layermem "${pair[@]}" --views pair --norm minmax --taps res2,layer2 --out "$TMP/lmp" >/dev/null
[ "$(wc -l <"$TMP/lmp/layermem_table.csv")" = 3 ] || fail "--taps res2,layer2 should give 2 rows"
sed -n 2p "$TMP/lmp/layermem_table.csv" | grep -q '^layer2,' || fail "taps are not in forward order"
grep -q '"views": "pair"' "$TMP/lmp/layermem.json" || fail "pair views not recorded"

# ---- sslmem: the encoder output, the same numbers as layermem's last tap ------
"$BIN" sslmem "${pair[@]}" --out "$TMP/lm" >"$TMP/ssl.txt"
for f in sslmem.json sslmem_points.csv sslmem_points.npy sslmem_score.npy sslmem_norm.npy sslmem_d_f.npy sslmem_d_g.npy; do
  [ -s "$TMP/lm/$f" ] || fail "sslmem did not write $f"
done
cmp -s "$TMP/lm/sslmem_score.npy" "$TMP/lm/layermem_out.npy" || fail "sslmem differs from layermem at res2"
head -1 "$TMP/lm/sslmem_points.csv" | grep -qx 'index,rank,sslmem,sslmem_norm,d_f,d_g' || fail "sslmem_points.csv header"
grep -q 'SSLMem at res2 over 40 candidates' "$TMP/ssl.txt" || fail "sslmem summary line"

# ---- unitmem ---------------------------------------------------------------------
"$BIN" unitmem --weights "$F" --data "$DATA" --indices 0:30 --k 2 --save-mu layer2 --quiet --out "$TMP/um" >"$TMP/um.txt"
for f in unitmem.json unitmem_summary.csv unitmem_units.csv unitmem_points.npy unitmem_score.npy unitmem_mu_max.npy \
         unitmem_mu_rest.npy unitmem_argmax.npy unitmem_dead.npy unitmem_mu_layer2.npy; do
  [ -s "$TMP/um/$f" ] || fail "unitmem did not write $f"
done
grep -q '"rest": "mean"' "$TMP/um/unitmem.json" || fail "unitmem.json does not record the rest statistic"
[ "$(wc -l <"$TMP/um/unitmem_units.csv")" = 181 ] || fail "unitmem_units.csv should have 180 units"
[ "$(wc -l <"$TMP/um/unitmem_summary.csv")" = 11 ] || fail "unitmem_summary.csv should have 10 taps"
grep -q '^prep,0,0,0,0,0,1$' "$TMP/um/unitmem_units.csv" || fail "the dead unit prep/0 should score 0 and be marked"
grep -q '^res2 ' "$TMP/um.txt" || fail "unitmem prints no res2 row"
"$BIN" unitmem --weights "$F" --data "$DATA" --indices 0:30 --k 2 --rest median --taps res2 --quiet --out "$TMP/umm" >/dev/null
grep -q '"rest": "median"' "$TMP/umm/unitmem.json" || fail "median not recorded"
# a PyTorch-named weights file (no memloc metadata) on 32x32 images
"$BIN" unitmem --weights "$SRC/tests/fixtures/io/resnet9_w0125.safetensors" --data synthetic:12 --k 1 --quiet \
  --out "$TMP/umt" >/dev/null
[ -s "$TMP/umt/unitmem.json" ] || fail "unitmem on PyTorch weights wrote nothing"

# ---- classmem ----------------------------------------------------------------------
"$BIN" classmem --weights "$F" --data "$DATA" --per-class 5 --quiet --out "$TMP/cm" >"$TMP/cm.txt"
for f in classmem.json classmem_summary.csv classmem_units.csv classmem_score.npy classmem_argmax.npy; do
  [ -s "$TMP/cm/$f" ] || fail "classmem did not write $f"
done
grep -q 'ClassMem over 20 images of 4 classes' "$TMP/cm.txt" || fail "classmem summary line"
head -1 "$TMP/cm/classmem_units.csv" | grep -qx 'tap,unit,classmem,mu_max,mu_rest,argmax_class,dead' || fail "classmem header"

# ---- analyze -------------------------------------------------------------------------
"$BIN" analyze consistency "$TMP/lm" --top-k 10 --quiet >"$TMP/cons.txt"
[ "$(wc -l <"$TMP/lm/consistency.csv")" = 46 ] || fail "consistency.csv should have 45 pairs"
grep -q '"schema": "memloc.consistency/1"' "$TMP/lm/consistency.json" || fail "consistency.json schema"
"$BIN" analyze ttest "$TMP/lm" --k 2 --quiet >"$TMP/tt.txt"
[ "$(wc -l <"$TMP/lm/ttest.csv")" = 11 ] || fail "ttest.csv should have 10 taps"
[ -s "$TMP/lm/ttest_top/unitmem.json" ] && [ -s "$TMP/lm/ttest_least/unitmem.json" ] || fail "ttest subsets missing"
grep -q 'Student' "$TMP/tt.txt" || fail "ttest should say which test"
"$BIN" analyze mumax "$TMP/lm" --k 2 --quiet >"$TMP/mm.txt"
[ -s "$TMP/lm/mumax.csv" ] && [ -s "$TMP/lm/unitmem.json" ] || fail "mumax wrote no mumax.csv / unitmem.json"
head -1 "$TMP/lm/mumax.csv" | grep -qx 'index,units,rank,sslmem' || fail "mumax.csv header"
grep -q "mu_max alignment of tap 'res2'" "$TMP/mm.txt" || fail "mumax summary line"

# ---- bad input ---------------------------------------------------------------------------
expect 64 "same architecture" "$BIN" layermem --f "$F" --g "$SRC/tests/fixtures/io/resnet9_w0125.safetensors" \
  --data "$DATA" --candidates 0:10 --out "$TMP/x"
expect 64 "unknown tap 'layer7' (valid: prep, layer1_head" "$BIN" layermem "${pair[@]}" --taps prep,layer7 --out "$TMP/x"
expect 64 "out of range" "$BIN" layermem --f "$F" --g "$G" --data "$DATA" --candidates 100:200 --out "$TMP/x"
expect 64 "out of range" "$BIN" unitmem --weights "$F" --data "$DATA" --indices 5,500 --out "$TMP/x"
expect 64 "--k" "$BIN" layermem "${pair[@]}" --k 0 --out "$TMP/x"
expect 64 "--k" "$BIN" unitmem --weights "$F" --data "$DATA" --k 0 --out "$TMP/x"
expect 64 "at least 2" "$BIN" unitmem --weights "$F" --data "$DATA" --indices 3 --out "$TMP/x"
expect 64 "--out DIR is required" "$BIN" unitmem --weights "$F" --data "$DATA"
expect 64 "--candidates" "$BIN" layermem --f "$F" --g "$G" --data "$DATA" --out "$TMP/x"
expect 66 "no layermem.json" "$BIN" analyze consistency "$TMP/nothing"
expect 64 "not one of consistency|ttest|mumax" "$BIN" analyze bogus "$TMP/lm"
"$BIN" sslmem "${pair[@]}" --out "$TMP/sslonly" >/dev/null
expect 64 "needs the per-tap scores" "$BIN" analyze consistency "$TMP/sslonly"
"$BIN" layermem --help | sed -n 4p | grep -q '^Examples:' || fail "help should start with examples"
echo "metrics CLI: all checks passed"
