#!/usr/bin/env bash
# memloc knn | probe | features on the committed tiny ResNet9 (width 0.125,
# 3x32x32) and synthetic datasets: --help, human and JSON output, automatic
# fitting of 28x28 gray images, reproducibility of the probe, the .npy files
# features writes, and one-line errors with their exit codes (64 usage,
# 66 missing input, 73 cannot create output).
#   bash tests/e2e/eval_cli.sh MEMLOC_BIN SOURCE_DIR
set -u
BIN=$1
SRC=$2
W="$SRC/tests/fixtures/io/resnet9_w0125.safetensors"
TRAIN=synthetic:300@0:200
TEST=synthetic:300@200:300
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() {
    echo "FAIL: $*"
    [ -f "$tmp/out" ] && sed 's/^/  stdout: /' "$tmp/out" | head -30
    [ -f "$tmp/err" ] && sed 's/^/  stderr: /' "$tmp/err" | head -30
    exit 1
}
run() { "$BIN" "$@" >"$tmp/out" 2>"$tmp/err" || fail "memloc $* exited $?"; }
# json_num KEY: the number after "KEY": in $tmp/out
json_num() { sed -n "s/^  \"$1\": \([-0-9.e+]*\),\{0,1\}$/\1/p" "$tmp/out"; }
# at_least X Y: X >= Y as numbers
at_least() { awk -v x="$1" -v y="$2" 'BEGIN { exit !(x != "" && x + 0 >= y + 0) }'; }
# expect RC NEEDLE -- ARGS...: exit code RC and one error line containing NEEDLE
expect() {
    local want=$1 needle=$2
    shift 3
    "$BIN" "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    [ $rc -eq "$want" ] || fail "memloc $* exited $rc, expected $want"
    [ "$(wc -l <"$tmp/err")" -eq 1 ] || fail "memloc $*: expected one error line"
    grep -q "^memloc: $1: " "$tmp/err" || fail "memloc $*: error line should name the command"
    grep -qF -- "$needle" "$tmp/err" || fail "memloc $*: message lacks '$needle'"
    [ -s "$tmp/out" ] && fail "memloc $*: wrote to stdout on error"
    echo "  $want: $(cat "$tmp/err")"
}

# ---- --help: stdout, examples first, exit 0; 'memloc help CMD' is the same
for cmd in knn probe features; do
    "$BIN" $cmd --help >"$tmp/out" 2>"$tmp/err" || fail "$cmd --help exited $?"
    head -n 8 "$tmp/out" | grep -q '^Examples:' || fail "$cmd --help should start with examples"
    [ -s "$tmp/err" ] && fail "$cmd --help wrote to stderr"
    "$BIN" help $cmd >"$tmp/out2" || fail "help $cmd exited $?"
    cmp -s "$tmp/out" "$tmp/out2" || fail "'memloc help $cmd' differs from '$cmd --help'"
    "$BIN" --help | grep -q "^  $cmd " || fail "memloc --help does not list $cmd"
done

# ---- knn: text and JSON; the synthetic classes survive the random encoder
run knn -q --weights "$W" --train $TRAIN --test $TEST
grep -q '^knn top-1 [0-9.]*% ([0-9]* of 100 test images)$' "$tmp/out" || fail "knn text output"
[ -s "$tmp/err" ] && fail "knn -q wrote to stderr"
run knn -q --weights "$W" --train $TRAIN --test $TEST --json --k 20 --t 0.1
grep -q '"schema": "memloc.knn/1"' "$tmp/out" || fail "knn schema"
[ "$(json_num n_train)" = 200 ] && [ "$(json_num n_test)" = 100 ] || fail "knn counts"
[ "$(json_num k)" = 20 ] && [ "$(json_num dim)" = 128 ] || fail "knn k / dim"
at_least "$(json_num top1)" 0.9 || fail "knn top1 $(json_num top1) < 0.9"
echo "  knn top-1 $(json_num top1)"
# k beyond the training set is clamped, with a note
run knn --weights "$W" --train synthetic:300@0:50 --test $TEST --json
[ "$(json_num k)" = 50 ] || fail "k not clamped to 50"
grep -q '^memloc: knn: note: k 200 is more than the 50 training images; using k 50$' "$tmp/err" ||
    fail "no note about clamping k"
# a tap instead of the encoder output
run knn -q --weights "$W" --train $TRAIN --test $TEST --tap layer2 --json
[ "$(json_num dim)" = 256 ] || fail "layer2 has 16x4x4 = 256 features"
# 28x28 gray images: padded to 32x32 and replicated to RGB automatically, noted
run knn --weights "$W" --train synthetic:300:28x28x1@0:200 --test synthetic:300:28x28x1@200:300 --json
grep -q '^memloc: knn: note: synthetic:300:28x28x1@0:200: pad 28x28 -> 32x32 (zero; top 2, left 2, bottom 2, right 2); gray -> RGB (replicated)$' \
    "$tmp/err" || fail "no note about padding and RGB"
grep -q '"train": "synthetic:300:28x28x1:10@0:200"' "$tmp/out" || fail "canonical train spec"
# explicit resize of larger images
run knn -q --weights "$W" --train synthetic:300:40x40x3@0:200 --test synthetic:300:40x40x3@200:300 --fit resize
echo "  resized 40x40: $(head -n 1 "$tmp/out")"

# ---- probe: JSON, accuracy, bitwise reproducible for a seed on 1 or 2 threads
probe=(probe -q --weights "$W" --train $TRAIN --test $TEST --epochs 5 --batch-size 32 --json)
run "${probe[@]}" --seed 3 -j 1
grep -q '"schema": "memloc.probe/1"' "$tmp/out" || fail "probe schema"
grep -q '"preprocess": "standardize"' "$tmp/out" || fail "probe preprocessing"
grep -q '"optimizer": "adam"' "$tmp/out" || fail "probe optimizer"
[ "$(json_num steps)" = 35 ] || fail "probe steps: 5 epochs of ceil(200/32) = 7"
at_least "$(json_num test_top1)" 0.9 || fail "probe test_top1 $(json_num test_top1) < 0.9"
echo "  probe test top-1 $(json_num test_top1), loss $(json_num final_loss)"
grep -v '"seconds"' "$tmp/out" >"$tmp/p1"
run "${probe[@]}" --seed 3 -j 2
grep -v '"seconds"' "$tmp/out" >"$tmp/p2"
cmp -s "$tmp/p1" "$tmp/p2" || fail "probe differs between 1 and 2 threads for one seed"
run "${probe[@]}" --seed 4 -j 2
[ "$(json_num final_loss)" != "$(sed -n 's/^  "final_loss": \(.*\),$/\1/p' "$tmp/p1")" ] ||
    fail "another seed gave the same loss"
run probe -q --weights "$W" --train $TRAIN --test $TEST --epochs 3 --optimizer sgd --preprocess l2
grep -q '^probe test top-1 [0-9.]*% (train [0-9.]*%, final loss [0-9.]*)$' "$tmp/out" || fail "probe text"
grep -q 'sgd lr 0.1 cosine, 3 epochs' "$tmp/out" || fail "sgd default lr 0.1"

# ---- features: .npy files, a subset equals the same rows of the whole set
run features -q --weights "$W" --data synthetic:50 --out "$tmp/f.npy" --labels "$tmp/l.npy"
head -c 128 "$tmp/f.npy" | grep -aq "'descr': '<f4', 'fortran_order': False, 'shape': (50, 128)" ||
    fail "features header"
head -c 128 "$tmp/l.npy" | grep -aq "'descr': '<i8', 'fortran_order': False, 'shape': (50,)" ||
    fail "labels header"
[ "$(stat -c %s "$tmp/f.npy")" -eq $((128 + 50 * 128 * 4)) ] || fail "features size"
[ "$(stat -c %s "$tmp/l.npy")" -eq $((128 + 50 * 8)) ] || fail "labels size"
# labels of synthetic:50 (10 classes) are i mod 10: image 13 has label 3
[ "$(od -An -t d8 -j $((128 + 13 * 8)) -N 8 "$tmp/l.npy" | tr -d ' ')" = 3 ] || fail "label 13"
ls "$tmp" | grep -q tmp && fail "a temporary file was left behind"
run features -q --weights "$W" --data synthetic:50 --indices 10:20 --out "$tmp/g.npy" --batch-size 3
head -c 128 "$tmp/g.npy" | grep -aq "'shape': (10, 128)" || fail "subset header"
od -An -v -f -j $((128 + 10 * 128 * 4)) -N $((10 * 128 * 4)) "$tmp/f.npy" | tr -s ' ' '\n' | sed '/^$/d' >"$tmp/a"
od -An -v -f -j 128 "$tmp/g.npy" | tr -s ' ' '\n' | sed '/^$/d' >"$tmp/b"
[ "$(wc -l <"$tmp/a")" -eq 1280 ] || fail "subset rows: $(wc -l <"$tmp/a") values"
paste "$tmp/a" "$tmp/b" | awk '{ d = $1 - $2; if (d < 0) d = -d; t = 1e-5 + 1e-4 * ($1 < 0 ? -$1 : $1);
    if (d > t) { print "row value " NR ": " $1 " vs " $2; bad = 1 } } END { exit bad }' ||
    fail "rows 10..19 differ between the whole set and --indices 10:20"
run features --weights "$W" --data synthetic:20:28x28x1 --tap input --out "$tmp/i.npy" --json
head -c 128 "$tmp/i.npy" | grep -aq "'shape': (20, 3072)" || fail "input features are 3x32x32"
grep -q '"shape": \[$' "$tmp/out" || grep -q '"shape": \[3, 32, 32\]' "$tmp/out" || fail "json shape"
grep -q '^memloc: features: note: synthetic:20:28x28x1: pad 28x28 -> 32x32' "$tmp/err" || fail "features note"

# ---- errors: one line naming the option or file, and the exit code
expect 64 "--weights F is required" -- knn --train $TRAIN --test $TEST
expect 64 "--test SPEC is required" -- knn --weights "$W" --train $TRAIN
expect 64 "--k: '0' is not an integer in [1, 1000000]" -- knn --weights "$W" --train $TRAIN --test $TEST --k 0
expect 64 "--t: 'abc' is not a number" -- knn --weights "$W" --train $TRAIN --test $TEST --t abc
expect 64 "option '--k' needs a value" -- knn --weights "$W" --train $TRAIN --test $TEST --k
expect 64 "unknown option '--bogus'" -- knn --weights "$W" --train $TRAIN --test $TEST --bogus
expect 64 "unexpected argument 'extra'" -- knn --weights "$W" --train $TRAIN --test $TEST extra
expect 64 "--fit: 'crop' is not one of auto|none|pad|resize" -- knn --weights "$W" --train $TRAIN --test $TEST --fit crop
expect 64 "--norm: 'zscore' is not one of half|cifar10|cifar100|stl10|imagenet" -- \
    probe --weights "$W" --train $TRAIN --test $TEST --norm zscore
expect 64 "--tap: 'layer9' is not a tap of resnet9; expected one of prep|layer1_head|" -- \
    knn --weights "$W" --train $TRAIN --test $TEST --tap layer9
expect 66 "$tmp/none.safetensors: cannot open" -- knn --weights "$tmp/none.safetensors" --train $TRAIN --test $TEST
expect 64 "images are 29x29, the encoder takes 32x32, and an odd difference cannot be padded evenly; use --fit resize" -- \
    knn --weights "$W" --train synthetic:30:29x29x3 --test $TEST
expect 64 "images are 28x28, the encoder takes 32x32, and fit is none" -- \
    probe --weights "$W" --train synthetic:30:28x28x3 --test $TEST --fit none
expect 64 "images are 40x40, larger than the encoder's 32x32 input; use --fit resize" -- \
    features --weights "$W" --data synthetic:30:40x40x3 --out "$tmp/x.npy"
expect 64 "--epochs: '0' is not an integer" -- probe --weights "$W" --train $TRAIN --test $TEST --epochs 0
expect 64 "--optimizer: 'lars' is not one of adam|sgd" -- probe --weights "$W" --train $TRAIN --test $TEST --optimizer lars
expect 64 "--out FILE is required" -- features --weights "$W" --data synthetic:5
expect 64 "--labels and --out both name" -- features --weights "$W" --data synthetic:5 --out "$tmp/x.npy" --labels "$tmp/x.npy"
expect 64 "index 99" -- features --weights "$W" --data synthetic:5 --indices 99 --out "$tmp/x.npy"
expect 73 "cannot create" -- features --weights "$W" --data synthetic:5 --out "$tmp/no/such/dir/x.npy"
[ -e "$tmp/x.npy" ] && fail "an output was written by a failing command"
echo "eval_cli: ok"
