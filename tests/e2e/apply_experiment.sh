#!/usr/bin/env bash
# memloc experiment --applications on the metric fixtures' tiny f and g
# (ResNet9 width 0.125, 16x16) and synthetic data: applications.json with
# every table and the computed findings, the per-unit UnitMem / ClassMem files
# of the SSL and the supervised encoder (trained here, resumable), the
# tables in summary.json, the report section with its tables and the
# side-by-side scatters, and errors for bad application options.
#   apply_experiment.sh MEMLOC_BIN SOURCE_DIR
set -euo pipefail
BIN=$1
SRC=$2
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
FX=$SRC/tests/fixtures/metrics
args=(--data synthetic:120:16x16x3:4 --image-size 16 --width 0.125 --epochs 1 --batch-size 32 --workers 0 --threads 1
      --f "$FX/f.safetensors" --g "$FX/g.safetensors" --eval 12 --k 2 --unit-k 2 --quiet
      --applications --app-data synthetic:48:16x16x3:4,synthetic:16:16x16x3:4 --app-epochs 1
      --app-donor "$FX/g.safetensors" --app-donor-data synthetic:48:16x16x3:2,synthetic:16:16x16x3:2)

"$BIN" experiment "${args[@]}" --out "$TMP/e" >"$TMP/out.txt"
A=$TMP/e/applications
[ -s "$A/applications.json" ] || fail "no applications.json"
for f in ssl/unitmem.json ssl/classmem.json supervised/unitmem.json supervised/classmem.json \
         supervised/classmem_units.csv; do
  [ -s "$A/$f" ] || fail "applications/ lacks $f"
done
[ -s "$TMP/e/supervised/model.safetensors" ] || fail "the supervised encoder was not trained"
grep -q '"method": "supervised"' "$TMP/e/supervised/config.json" || fail "the supervised run is not supervised"
grep -q '"indices": "0:108"' "$TMP/e/supervised/config.json" || fail "the supervised encoder does not train on f's data"
j=$A/applications.json
grep -q '"schema": "memloc.applications/1"' "$j" || fail "applications.json schema"
python3 - "$j" <<'EOF' || fail "applications.json content"
import json, sys
d = json.load(open(sys.argv[1]))
ft = d["finetune"]["rows"]
assert len(ft) == 9 and ft[0]["select"] == "head" and ft[0]["n"] == 0, ft[0]
assert {(r["select"], r["n"]) for r in ft[1:]} == {(s, n) for s in ("layermem", "delta", "last", "random") for n in (1, 2)}
assert [r for r in ft if r["select"] == "last" and r["n"] == 1][0]["blocks"] == "layer3_residual2"
pr = d["prune"]["rows"]
assert len(pr) == 7 and pr[0]["by"] == "none" and pr[0]["units"] == 0
assert all(r["units"] > 0 for r in pr[1:])
sw = d["swap"]["rows"]
assert [r["row"] for r in sw] == ["A", "B", "most", "least", "random"] and all(len(r["test_top1"]) == 2 for r in sw)
uc = d["unit_check"]
assert uc["tap"] == "layer3_residual2" and uc["same_tap_max_change"] == 0.0
sv = d["ssl_vs_supervised"]
assert len(sv["ssl_taps"]) == 10 and len(sv["supervised_taps"]) == 10
assert len(sv["ssl_taps"][5]["unitmem"]) == 16 and len(sv["ssl_taps"][5]["classmem"]) == 16  # layer2
ids = [f["id"] for f in d["findings"]]
assert ids == ["finetune_memorizing_beats_last", "prune_top_hurts_most", "unit_check_rises",
               "ssl_units_memorize_points"], ids
for f in d["findings"]:
    assert isinstance(f["holds"], bool) and f["evidence"]
EOF
grep -q '"applications": {' "$TMP/e/summary.json" || fail "summary.json has no applications"
grep -q '"classmem": \[' "$TMP/e/summary.json" && fail "summary.json carries the per-unit arrays"
h=$TMP/e/report.html
for id in applications app-findings app-finetune app-prune app-swap app-unit app-ssl-sup; do
  grep -q "id=\"$id\"" "$h" || fail "report.html has no #$id"
done
[ "$(grep -o 'data-chart="scatter"' "$h" | wc -l)" = 21 ] || fail "expected 20 ClassMem/UnitMem scatters + the SSLMem one"
grep -q 'SSL: layer2' "$h" && grep -q 'supervised: layer2' "$h" || fail "no side-by-side scatter for layer2"

# a re-run does not retrain the supervised encoder
before=$(md5sum "$TMP/e/supervised/model.safetensors")
"$BIN" experiment "${args[@]}" --out "$TMP/e" >/dev/null
[ "$before" = "$(md5sum "$TMP/e/supervised/model.safetensors")" ] || fail "re-run retrained the supervised encoder"

# bad options
set +e
"$BIN" experiment "${args[@]}" --app-data synthetic:48:16x16x3:4 --out "$TMP/x" 2>"$TMP/err"; rc=$?
set -e
[ $rc = 78 ] && grep -q "option app_data: expected TRAIN,TEST" "$TMP/err" || fail "bad app_data: exit $rc: $(cat "$TMP/err")"
echo "apply_experiment: OK"
