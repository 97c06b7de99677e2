#!/usr/bin/env bash
# memloc data info | split on real and hand-made inputs: --help, human and
# JSON output, and one-line errors with their exit codes (64 usage, 65
# malformed data, 66 missing input).
#   bash tests/e2e/data_cli.sh MEMLOC_BIN SOURCE_DIR
set -u
BIN=$1
SRC=$2
CIFAR_JPEG="$SRC/../shared/data/cifar10-jpeg.tar.gz"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() {
    echo "FAIL: $*"
    [ -f "$tmp/out" ] && sed 's/^/  stdout: /' "$tmp/out" | head -20
    [ -f "$tmp/err" ] && sed 's/^/  stderr: /' "$tmp/err"
    exit 1
}
# expect RC NEEDLE -- ARGS...: exit code RC and one error line containing NEEDLE
expect() {
    local want=$1 needle=$2
    shift 3
    "$BIN" "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    [ $rc -eq "$want" ] || fail "memloc $* exited $rc, expected $want"
    [ "$(grep -c '^memloc: data: ' "$tmp/err")" -eq 1 ] || fail "memloc $*: expected one error line"
    tail -n 1 "$tmp/err" | grep -qF -- "$needle" || fail "memloc $*: message lacks '$needle'"
    echo "  $want: $(tail -n 1 "$tmp/err")"
}

# --help: stdout, examples first, exit 0
"$BIN" data --help >"$tmp/out" 2>"$tmp/err" || fail "--help exited $?"
head -n 8 "$tmp/out" | grep -q '^Examples:' || fail "--help should start with examples"
[ -s "$tmp/err" ] && fail "--help wrote to stderr"
"$BIN" help data >"$tmp/out2" || fail "help data exited $?"
cmp -s "$tmp/out" "$tmp/out2" || fail "'memloc help data' differs from 'memloc data --help'"

# Fashion-MNIST from Debian, JSON
"$BIN" data info -q fmnist:test --json >"$tmp/out" 2>"$tmp/err" || fail "fmnist info exited $?"
grep -q '"schema": "memloc.data_info/1"' "$tmp/out" || fail "json schema"
grep -q '"n": 10000' "$tmp/out" || fail "fmnist test count"
[ "$(grep -c '"count": 1000$' "$tmp/out")" -eq 10 ] || fail "fmnist per-class counts"
"$BIN" data info -q fmnist --pad 32 --rgb >"$tmp/out" 2>"$tmp/err" || fail "fmnist pad exited $?"
grep -q '^shape     32x32x3' "$tmp/out" || fail "padded shape"
grep -q '^prepared  pad 28x28 -> 32x32' "$tmp/out" || fail "prep line"
grep -q '^      9  Ankle boot  *6000$' "$tmp/out" || fail "fmnist train per-class counts"

# the CIFAR-10 JPEG archive, read in place; a subset by --indices
"$BIN" data info -q "folder:$CIFAR_JPEG/test" >"$tmp/out" 2>"$tmp/err" || fail "cifar jpeg test exited $?"
grep -q '^images    10000$' "$tmp/out" || fail "cifar jpeg test count"
grep -q '^      3  cat  *1000$' "$tmp/out" || fail "cifar jpeg per-class count"
"$BIN" data info -q "folder:$CIFAR_JPEG/test" --indices 0:10,1000:1005 >"$tmp/out" 2>"$tmp/err" ||
    fail "subset exited $?"
grep -q '^images    15$' "$tmp/out" || fail "subset count"
grep -q '^      0  airplane  *10$' "$tmp/out" || fail "subset class 0"
grep -q '^      1  automobile  *5$' "$tmp/out" || fail "subset class 1"

# split.json
"$BIN" data split -q synthetic:100 -o "$tmp/split.json" 2>"$tmp/err" || fail "split exited $?"
grep -q '"schema": "memloc.split/1"' "$tmp/split.json" || fail "split schema"
grep -q '"candidate": 10,' "$tmp/split.json" || fail "split counts"

# errors
expect 64 "unknown dataset 'cifar11'" -- data info cifar11:/x
expect 64 "index 10 out of range" -- data info synthetic:10@10
expect 64 "not a subcommand" -- data frobnicate
expect 64 "unknown option" -- data info --bogus fmnist
expect 66 "/nonexistent: no such directory" -- data info -q cifar10:/nonexistent
mkdir -p "$tmp/c10"
head -c 100 /dev/zero >"$tmp/c10/test_batch.bin"
expect 65 "$tmp/c10/test_batch.bin: 100 bytes, expected a whole number of 3073-byte" -- data info -q "cifar10:$tmp/c10:test"
mkdir -p "$tmp/imgs/cat" "$tmp/imgs/dog" "$tmp/imgs/empty"
printf 'P6\n2 2\n255\n' >"$tmp/imgs/cat/a.ppm"
head -c 12 /dev/zero >>"$tmp/imgs/cat/a.ppm"
cp "$tmp/imgs/cat/a.ppm" "$tmp/imgs/dog/a.ppm"
printf 'not a jpeg' >"$tmp/imgs/dog/b.jpg"
expect 65 "empty: class folder has no image files" -- data info -q "folder:$tmp/imgs"
rmdir "$tmp/imgs/empty"
expect 65 "dog/b.jpg: not an image" -- data info -q "folder:$tmp/imgs"
"$BIN" data info "folder:$tmp/imgs" --skip-corrupt >"$tmp/out" 2>"$tmp/err" || fail "--skip-corrupt exited $?"
grep -q 'skipped 1 corrupt image: .*dog/b.jpg' "$tmp/err" || fail "skip warning"
grep -q '^images    2$' "$tmp/out" || fail "count after skipping"
echo "data_cli: ok"
