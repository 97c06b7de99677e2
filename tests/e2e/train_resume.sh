#!/usr/bin/env bash
# memloc train end to end on a tiny model: the loss decreases, the run
# directory has its documented contents, and a run interrupted by SIGINT or
# killed with SIGKILL and then resumed ends with bitwise the same
# model.safetensors as an uninterrupted run (same seed, same threads).
#   train_resume.sh MEMLOC_BIN SOURCE_DIR
set -euo pipefail
BIN=$1
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

common=(--data synthetic:512:32x32x3:4 --width 0.25 --proj-hidden 64 --proj-dim 32 --batch-size 64
        --epochs 4 --lr 0.003 --threads 2 --workers 2 --log-every 2 --checkpoint-every 1 --keep-checkpoints 0
        --seed 7 --quiet)

# 1. uninterrupted reference run
"$BIN" train "${common[@]}" --out "$TMP/a"
for f in config.json log.jsonl model.safetensors checkpoints/epoch_0001.safetensors checkpoints/epoch_0004.safetensors; do
  [ -s "$TMP/a/$f" ] || fail "run directory lacks $f"
done
grep -q '"schema": "memloc.train.config/1"' "$TMP/a/config.json" || fail "config.json has no schema"
# loss decreases from the first to the last epoch
first=$(grep '"type":"epoch"' "$TMP/a/log.jsonl" | head -1 | sed 's/.*"loss":\([0-9.e+-]*\).*/\1/')
last=$(grep '"type":"epoch"' "$TMP/a/log.jsonl" | tail -1 | sed 's/.*"loss":\([0-9.e+-]*\).*/\1/')
echo "epoch loss: first $first last $last"
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a) }' || fail "loss did not decrease ($first -> $last)"
[ "$(grep -c '"type":"epoch"' "$TMP/a/log.jsonl")" = 4 ] || fail "log.jsonl should have 4 epoch lines"

# 2. SIGINT in the middle, then --resume
"$BIN" train "${common[@]}" --out "$TMP/b" &
pid=$!
while [ ! -e "$TMP/b/checkpoints/epoch_0001.safetensors" ]; do sleep 0.05; kill -0 $pid 2>/dev/null || break; done
kill -INT $pid 2>/dev/null || true
set +e; wait $pid; rc=$?; set -e
echo "interrupted run exited with $rc"
if [ $rc -ne 0 ]; then
  [ $rc = 130 ] || fail "SIGINT exit code $rc, expected 130"
  [ ! -e "$TMP/b/model.safetensors" ] || fail "an interrupted run must not leave model.safetensors"
  ls "$TMP/b/checkpoints" | grep -q . || fail "no checkpoint after SIGINT"
fi
"$BIN" train --resume "$TMP/b" --quiet
cmp "$TMP/a/model.safetensors" "$TMP/b/model.safetensors" || fail "SIGINT + resume differs from the uninterrupted run"
cmp <(grep '"type":"epoch"' "$TMP/a/log.jsonl" | sed 's/"views_per_s":[^,}]*//; s/"seconds":[^,}]*//') \
    <(grep '"type":"epoch"' "$TMP/b/log.jsonl" | sed 's/"views_per_s":[^,}]*//; s/"seconds":[^,}]*//') \
  || fail "resumed log.jsonl epochs differ"

# 3. SIGKILL between checkpoints, then --resume
"$BIN" train "${common[@]}" --out "$TMP/c" &
pid=$!
while [ ! -e "$TMP/c/checkpoints/epoch_0002.safetensors" ]; do sleep 0.02; kill -0 $pid 2>/dev/null || break; done
kill -KILL $pid 2>/dev/null || true
wait $pid 2>/dev/null || true
ls "$TMP/c/checkpoints" | grep -q '\.tmp\.' && echo "note: a temporary checkpoint was left by SIGKILL (ignored on resume)"
"$BIN" train --resume "$TMP/c" --quiet
cmp "$TMP/a/model.safetensors" "$TMP/c/model.safetensors" || fail "SIGKILL + resume differs from the uninterrupted run"

# 4. a finished run resumes to a no-op; a fresh run refuses a used directory
"$BIN" train --resume "$TMP/a" --quiet
set +e
"$BIN" train "${common[@]}" --out "$TMP/a" 2> "$TMP/err"; rc=$?
set -e
[ $rc = 73 ] || fail "training into a used directory: exit $rc, expected 73"
grep -q -- "--resume\|another --out" "$TMP/err" || fail "no hint in: $(cat "$TMP/err")"

# 5. bad options name the option and the accepted values
set +e
"$BIN" train --data synthetic:64 --optimizer adagrad --out "$TMP/x" 2> "$TMP/err"; rc=$?
set -e
[ $rc = 78 ] || fail "bad --optimizer: exit $rc, expected 78"
grep -q "sgd|adam|adamw|lars" "$TMP/err" || fail "bad --optimizer message: $(cat "$TMP/err")"
echo "train_resume: OK"
