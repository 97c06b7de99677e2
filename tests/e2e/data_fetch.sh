#!/usr/bin/env bash
# memloc data fetch against a local HTTP server (python3 -m http.server on
# 127.0.0.1) serving small archives this test makes: a download that verifies
# and unpacks, checksum mismatches (exit 65, nothing left behind), a
# third-party checksum that only warns, HTTP 404 (exit 66), a corrupt archive,
# and usage errors (exit 64).
#   bash tests/e2e/data_fetch.sh MEMLOC_BIN SOURCE_DIR
set -u
BIN=$1
tmp=$(mktemp -d)
server=
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*"
    [ -f "$tmp/err" ] && sed 's/^/  stderr: /' "$tmp/err"
    exit 1
}

# A CIFAR-10 binary archive: 5 train batches and a test batch of 2 records.
batch() { # FILE LABEL
    : >"$1"
    for r in 0 1; do
        printf "\\$(printf %03o "$2")" >>"$1"
        head -c 3072 /dev/zero | tr '\0' '\7' >>"$1"
    done
}
mkdir -p "$tmp/src/cifar-10-batches-bin" "$tmp/src/cifar-100-binary" "$tmp/serve"
for i in 1 2 3 4 5; do batch "$tmp/src/cifar-10-batches-bin/data_batch_$i.bin" "$i"; done
batch "$tmp/src/cifar-10-batches-bin/test_batch.bin" 9
printf 'a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n' >"$tmp/src/cifar-10-batches-bin/batches.meta.txt"
tar czf "$tmp/serve/cifar-10-binary.tar.gz" -C "$tmp/src" cifar-10-batches-bin
head -c 3074 /dev/zero >"$tmp/src/cifar-100-binary/train.bin"
head -c 3074 /dev/zero >"$tmp/src/cifar-100-binary/test.bin"
tar czf "$tmp/serve/cifar-100-binary.tar.gz" -C "$tmp/src" cifar-100-binary
md5=$(md5sum "$tmp/serve/cifar-10-binary.tar.gz" | cut -d' ' -f1)
sha=$(sha256sum "$tmp/serve/cifar-10-binary.tar.gz" | cut -d' ' -f1)

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m http.server --bind 127.0.0.1 "$port" --directory "$tmp/serve" >"$tmp/server.log" 2>&1 &
server=$!
for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done
export MLOC_FETCH_BASE_URL="http://127.0.0.1:$port"

# 1. success: download, verify MD5 and SHA-256, unpack, read back
"$BIN" data fetch cifar10 "$tmp/out" --md5 "$md5" --sha256 "$sha" 2>"$tmp/err" || fail "fetch exited $?"
[ -f "$tmp/out/cifar-10-batches-bin/data_batch_5.bin" ] || fail "archive not unpacked"
left=$(find "$tmp/out" -name '.*' | wc -l)
[ "$left" -eq 0 ] || fail "temporary files left: $(find "$tmp/out" -name '.*')"
"$BIN" data info -q "cifar10:$tmp/out" >"$tmp/info" 2>"$tmp/err" || fail "info after fetch exited $?"
grep -q '^images    10$' "$tmp/info" || fail "expected 10 images: $(cat "$tmp/info")"
grep -q '^      9  j ' "$tmp/info" || fail "class names from batches.meta.txt: $(cat "$tmp/info")"
# already there: nothing downloaded
"$BIN" data fetch -v cifar10 "$tmp/out" 2>"$tmp/err" || fail "second fetch exited $?"
grep -q 'already present' "$tmp/err" || fail "expected 'already present'"

# 2. a wrong MD5 given by the user: exit 65, nothing left
"$BIN" data fetch cifar10 "$tmp/bad" --md5 0123456789abcdef0123456789abcdef 2>"$tmp/err"
rc=$?
[ $rc -eq 65 ] || fail "md5 mismatch exited $rc, expected 65"
grep -q "^memloc: data: cifar-10-binary.tar.gz: MD5 $md5, expected 0123456789abcdef0123456789abcdef" "$tmp/err" ||
    fail "md5 mismatch message"
[ "$(grep -c '^memloc: data: ' "$tmp/err")" -eq 1 ] || fail "expected one error line"
[ -z "$(find "$tmp/bad" -mindepth 1)" ] || fail "files left after a mismatch: $(find "$tmp/bad" -mindepth 1)"

# 3. the built-in official MD5 does not match the test archive: exit 65
"$BIN" data fetch cifar10 "$tmp/bad2" 2>"$tmp/err"
rc=$?
[ $rc -eq 65 ] || fail "official md5 mismatch exited $rc, expected 65"
grep -q 'expected c32a1d4ab5d03f1284b67883e8d87530' "$tmp/err" || fail "official md5 message"
[ -z "$(find "$tmp/bad2" -mindepth 1)" ] || fail "files left after an official mismatch"

# 4. CIFAR-100's MD5 is third-party: a mismatch only warns
"$BIN" data fetch cifar100 "$tmp/c100" 2>"$tmp/err" || fail "third-party mismatch exited $?"
grep -q 'third-party' "$tmp/err" || fail "expected a third-party warning"
[ -f "$tmp/c100/cifar-100-binary/train.bin" ] || fail "cifar100 not unpacked"

# 5. HTTP 404: exit 66, nothing left
"$BIN" data fetch stl10 "$tmp/stl" 2>"$tmp/err"
rc=$?
[ $rc -eq 66 ] || fail "404 exited $rc, expected 66"
grep -q 'HTTP 404' "$tmp/err" || fail "404 message"
[ -z "$(find "$tmp/stl" -mindepth 1)" ] || fail "files left after a 404"

# 6. a corrupt archive whose checksum matches: unpacking fails, exit 65, nothing left
head -c $(($(stat -c %s "$tmp/serve/cifar-10-binary.tar.gz") / 2)) "$tmp/serve/cifar-10-binary.tar.gz" >"$tmp/serve/cut.tar.gz"
cmd5=$(md5sum "$tmp/serve/cut.tar.gz" | cut -d' ' -f1)
"$BIN" data fetch cifar10 "$tmp/cut" --url "$MLOC_FETCH_BASE_URL/cut.tar.gz" --md5 "$cmd5" 2>"$tmp/err"
rc=$?
[ $rc -eq 65 ] || fail "corrupt archive exited $rc, expected 65"
[ -z "$(find "$tmp/cut" -mindepth 1)" ] || fail "files left after a corrupt archive: $(find "$tmp/cut" -mindepth 1)"

# 7. usage errors: exit 64
"$BIN" data fetch imagenet "$tmp/x" 2>"$tmp/err"
[ $? -eq 64 ] || fail "unknown dataset should exit 64"
grep -q "unknown dataset 'imagenet'" "$tmp/err" || fail "unknown dataset message"
"$BIN" data fetch fmnist "$tmp/x" --md5 0123 2>"$tmp/err"
[ $? -eq 64 ] || fail "--md5 on a multi-file dataset should exit 64"
"$BIN" data fetch cifar10 2>"$tmp/err"
[ $? -eq 64 ] || fail "missing DIR should exit 64"
echo "data_fetch: ok"
