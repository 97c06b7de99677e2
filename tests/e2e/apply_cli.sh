#!/usr/bin/env bash
# memloc finetune / prune / swap / unit-finetune end to end on the metric
# fixtures' tiny encoders (ResNet9 width 0.125 on 16x16, f and g), a tiny
# SimCLR run (width 0.25, with a projection head) and synthetic data: the
# printed tables and JSON documents, written weights files, a full swap that
# reproduces the donor's features bitwise, the same table for the same seed,
# and clear errors with their exit codes.
#   apply_cli.sh MEMLOC_BIN SOURCE_DIR
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
TRAIN=synthetic:48:16x16x3:4
TEST=synthetic:16:16x16x3:4

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
# one thread: tiny models are dominated by OpenMP synchronisation on a loaded machine
J=(-j 1)
# jfield FILE KEY: the first number after "KEY": in a JSON document
jfield() { grep -o "\"$2\": [-0-9.e+]*" "$1" | head -1 | sed 's/.*: //'; }

# inputs: LayerMem and UnitMem of f
"$BIN" layermem "${J[@]}" --f "$F" --g "$G" --data "$DATA" --candidates 60:120 --eval 40 --k 2 -q --out "$TMP/lm" >/dev/null
"$BIN" unitmem "${J[@]}" --weights "$F" --data "$DATA" --indices 0:60 --k 2 -q --out "$TMP/um" >/dev/null

# ---- finetune -----------------------------------------------------------------------
"$BIN" finetune "${J[@]}" --weights "$F" --layermem "$TMP/lm" --select layermem --n 2 --train "$TRAIN" --test "$TEST" \
  --epochs 1 --batch-size 16 -q --out "$TMP/ft.safetensors" >"$TMP/ft.txt"
grep -q 'fine-tuned .* (layermem, [0-9]* parameters) + linear head: test top-1' "$TMP/ft.txt" || fail "finetune line"
[ -s "$TMP/ft.safetensors" ] || fail "finetune --out wrote nothing"
"$BIN" info --weights "$TMP/ft.safetensors" >/dev/null || fail "the fine-tuned file does not load"
"$BIN" finetune "${J[@]}" --weights "$F" --select last --n 1 --train "$TRAIN" --test "$TEST" --epochs 1 --batch-size 16 -q \
  --json >"$TMP/ft.json"
grep -q '"schema": "memloc.finetune/1"' "$TMP/ft.json" || fail "finetune --json schema"
grep -q '"blocks": "layer3_residual2"' "$TMP/ft.json" || fail "--select last --n 1 is not layer3_residual2"
grep -q '"steps": 3' "$TMP/ft.json" || fail "48 images in batches of 16 for 1 epoch should be 3 steps"

# the table: the head alone, then 4 rules x 2 sizes; the same seed (and threads) gives the same table
cmp_args=(--weights "$F" --layermem "$TMP/lm" --compare --n 1,2 --train "$TRAIN" --test "$TEST" --epochs 1
  --batch-size 16 -q --seed 4)
"$BIN" finetune "${J[@]}" "${cmp_args[@]}" >"$TMP/cmp.txt"
for r in head layermem delta last random; do grep -q "^$r " "$TMP/cmp.txt" || fail "the table has no $r row"; done
grep -q 'n=1 .*n=2' "$TMP/cmp.txt" || fail "the table has no n=1 / n=2 columns"
[ "$(grep -c '^  [a-z]* *n=[12] ' "$TMP/cmp.txt")" = 8 ] || fail "the table should list 8 block choices"
"$BIN" finetune "${J[@]}" "${cmp_args[@]}" --json >"$TMP/cmp1.json"
"$BIN" finetune "${J[@]}" "${cmp_args[@]}" --json >"$TMP/cmp2.json"
[ "$(grep -c '"select"' "$TMP/cmp1.json")" = 9 ] || fail "--compare --json should have 9 rows"
diff <(grep -v seconds "$TMP/cmp1.json") <(grep -v seconds "$TMP/cmp2.json") >/dev/null \
  || fail "the table differs between runs with the same seed"

expect 64 "--layermem DIR is required" "$BIN" finetune "${J[@]}" --weights "$F" --train "$TRAIN" --test "$TEST"
expect 64 "expected 1..8" "$BIN" finetune "${J[@]}" --weights "$F" --select last --n 9 --train "$TRAIN" --test "$TEST"
expect 64 "batch 500" "$BIN" finetune "${J[@]}" --weights "$F" --select last --n 1 --train "$TRAIN" --test "$TEST" \
  --batch-size 500
expect 66 "no LayerMem table" "$BIN" finetune "${J[@]}" --weights "$F" --layermem "$TMP/none" --train "$TRAIN" --test "$TEST"

# ---- prune --------------------------------------------------------------------------------
"$BIN" prune "${J[@]}" --weights "$F" --unitmem "$TMP/um" --by top --fraction 0.25 --out "$TMP/p.safetensors" \
  --evaluate "$TRAIN,$TEST" --epochs 2 -q >"$TMP/p.txt"
grep -q '^pruned [0-9]* units: top 25%' "$TMP/p.txt" || fail "prune summary"
grep -q '^  res1 .*(residual join)' "$TMP/p.txt" || fail "prune does not show res1 as a residual join"
grep -q '^probe test top-1' "$TMP/p.txt" || fail "prune --evaluate printed no accuracy"
[ -s "$TMP/p.safetensors" ] || fail "prune --out wrote nothing"
"$BIN" prune "${J[@]}" --weights "$F" --unitmem "$TMP/um" --by bottom --fraction 0.5 --scope global --out "$TMP/p2.safetensors" \
  -q --json >"$TMP/p.json"
units=$(jfield "$TMP/p.json" units)
[ -n "$units" ] && [ "$units" -gt 0 ] || fail "prune --json has no unit count"
sum=$(grep -o '"units": [0-9]*' "$TMP/p.json" | tail -n +2 | sed 's/.*: //' | paste -sd+ | bc)
[ "$sum" = "$units" ] || fail "per-tap counts ($sum) do not add up to $units"
"$BIN" prune "${J[@]}" --weights "$F" --unitmem "$TMP/um" --compare --evaluate "$TRAIN,$TEST" --epochs 2 -q >"$TMP/pc.txt"
[ "$(grep -cE '^(none|top|bottom|random) ' "$TMP/pc.txt")" = 7 ] || fail "the pruning table should have 7 rows"
grep -q '^top  *10% ' "$TMP/pc.txt" && grep -q '^random  *20% ' "$TMP/pc.txt" || fail "pruning table rows"

expect 64 "give --out" "$BIN" prune "${J[@]}" --weights "$F" --unitmem "$TMP/um"
expect 64 "expected TRAIN,TEST" "$BIN" prune "${J[@]}" --weights "$F" --unitmem "$TMP/um" --compare --evaluate "$TRAIN"
expect 64 "--fraction" "$BIN" prune "${J[@]}" --weights "$F" --unitmem "$TMP/um" --fraction 2 --out "$TMP/x.safetensors"
expect 66 "no UnitMem results" "$BIN" prune "${J[@]}" --weights "$F" --unitmem "$TMP/lm" --out "$TMP/x.safetensors"

# ---- swap ---------------------------------------------------------------------------------
"$BIN" swap "${J[@]}" --a "$F" --b "$G" --blocks layer2,layer3_head --out "$TMP/c.safetensors" >"$TMP/s.txt"
grep -q '^copied 14 tensors of 2 block(s)' "$TMP/s.txt" || fail "swap should copy 7 tensors per block"
# every block from g: the encoder is g's, features bitwise equal
all=prep,layer1_head,layer1_residual1,layer1_residual2,layer2,layer3_head,layer3_residual1,layer3_residual2
"$BIN" swap "${J[@]}" --a "$F" --b "$G" --blocks $all --out "$TMP/call.safetensors" >/dev/null
"$BIN" features "${J[@]}" --weights "$TMP/call.safetensors" --data "$TEST" --out "$TMP/fc.npy" -q
"$BIN" features "${J[@]}" --weights "$G" --data "$TEST" --out "$TMP/fg.npy" -q
"$BIN" features "${J[@]}" --weights "$F" --data "$TEST" --out "$TMP/ff.npy" -q
cmp -s "$TMP/fc.npy" "$TMP/fg.npy" || fail "f with all of g's blocks does not give g's features"
cmp -s "$TMP/fc.npy" "$TMP/ff.npy" && fail "f with all of g's blocks still gives f's features"
"$BIN" swap "${J[@]}" --a "$F" --b "$G" --compare --layermem "$TMP/lm" --n 2 --evaluate "$TRAIN,$TEST" \
  --evaluate "synthetic:48:16x16x3:2,synthetic:16:16x16x3:2" --epochs 2 -q >"$TMP/sc.txt"
for r in A B most least random; do grep -q "^$r " "$TMP/sc.txt" || fail "the swap table has no $r row"; done

# a wider donor: the error names the tensor and both shapes
"$BIN" train --threads 1 --data "$TRAIN" --image-size 16 --width 0.25 --epochs 1 --batch-size 32 --proj-hidden 16 --proj-dim 8 \
  --workers 0 -q --out "$TMP/run" >/dev/null
W=$TMP/run/model.safetensors
expect 64 "layer2.conv.weight: A \[16, 8, 3, 3\], B \[32, 16, 3, 3\]" \
  "$BIN" swap "${J[@]}" --a "$F" --b "$W" --blocks layer2 --out "$TMP/x.safetensors"
[ -e "$TMP/x.safetensors" ] && fail "a failed swap wrote its output"
# a 1-channel donor: its first conv cannot be given to a 3-channel A, and B is probed on gray images
"$BIN" train --threads 1 --data synthetic:48:16x16x1:4 --image-size 16 --width 0.125 --epochs 1 --batch-size 32 \
  --proj-hidden 16 --proj-dim 8 --workers 0 -q --out "$TMP/gray" >/dev/null
"$BIN" swap "${J[@]}" --a "$F" --b "$TMP/gray/model.safetensors" --compare --layermem "$TMP/lm" --n 7 \
  --evaluate "$TRAIN,$TEST" --epochs 2 -q >"$TMP/sg.txt"
grep -q '^B ' "$TMP/sg.txt" || fail "the swap table with a 1-channel donor has no B row"
grep -q '^most .*prep' "$TMP/sg.txt" && fail "prep (1 vs 3 input channels) was exchanged"
expect 64 "7 can be exchanged" "$BIN" swap "${J[@]}" --a "$F" --b "$TMP/gray/model.safetensors" --compare \
  --layermem "$TMP/lm" --n 8 --evaluate "$TRAIN,$TEST"
expect 64 "'layer9'" "$BIN" swap "${J[@]}" --a "$F" --b "$G" --blocks layer9 --out "$TMP/x.safetensors"
expect 64 "--blocks LIST is required" "$BIN" swap "${J[@]}" --a "$F" --b "$G" --out "$TMP/x.safetensors"

# ---- unit-finetune (a model with a projection head) ----------------------------------------
"$BIN" unit-finetune "${J[@]}" --weights "$W" --unit layer2:3 --point 7 --data "$DATA" --steps 3 --pairs 2 --negatives 6 \
  --eval-points 20 --k 2 -q --json --out "$TMP/u.safetensors" >"$TMP/u.json"
grep -q '"schema": "memloc.unit_finetune/1"' "$TMP/u.json" || fail "unit-finetune --json schema"
grep -q '"unitmem_before"' "$TMP/u.json" && grep -q '"unitmem_after"' "$TMP/u.json" || fail "no before/after"
# the tap's other units keep their parameters and inputs: their UnitMem cannot move
[ "$(grep -A3 '"same_tap_others"' "$TMP/u.json" | grep -o '"max_abs_change": [-0-9.e+]*' | sed 's/.*: //')" = 0.0 ] \
  || fail "other units of the tap changed"
[ -s "$TMP/u.safetensors" ] || fail "unit-finetune --out wrote nothing"
"$BIN" unit-finetune "${J[@]}" --weights "$W" --unit layer2:3 --point 7 --data "$DATA" --steps 2 --pairs 2 --negatives 4 \
  --eval-points 10 --k 2 -q >"$TMP/u.txt"
grep -q '^  the unit ' "$TMP/u.txt" && grep -q '^  other units of the tap ' "$TMP/u.txt" || fail "unit-finetune table"
expect 64 "res2 is a residual join" "$BIN" unit-finetune "${J[@]}" --weights "$W" --unit res2:0 --point 7 --data "$DATA"
expect 64 "point 500" "$BIN" unit-finetune "${J[@]}" --weights "$W" --unit layer2:3 --point 500 --data "$DATA"
expect 64 "unit 99, expected 0..31" "$BIN" unit-finetune "${J[@]}" --weights "$W" --unit layer2:99 --point 7 --data "$DATA"
expect 64 "'layer7' is not a tap" "$BIN" unit-finetune "${J[@]}" --weights "$W" --unit layer7:1 --point 7 --data "$DATA"
expect 64 "expected TAP:INDEX" "$BIN" unit-finetune "${J[@]}" --weights "$W" --unit layer2 --point 7 --data "$DATA"
echo "apply_cli: ok"
