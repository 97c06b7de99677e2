#!/usr/bin/env bash
# memloc experiment end to end on a tiny model: the output directory, the
# resumability (a re-run never retrains a finished encoder; an interrupted one
# continues), --f/--g, and report.html rendered by headless Chromium with every
# table and chart present and non-empty (checked from the DOM).
#   experiment_report.sh MEMLOC_BIN SOURCE_DIR
set -euo pipefail
BIN=$1
SRC=$2
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

args=(--data synthetic:400:32x32x3:4 --width 0.25 --proj-hidden 64 --proj-dim 32 --batch-size 64
      --epochs 2 --threads 2 --eval 40 --top 10 --random 20 --k 2 --unit-k 2 --consistency-k 10
      --monitor-knn synthetic:400:32x32x3:4,synthetic:200:32x32x3:4 --quiet)

"$BIN" experiment "${args[@]}" --out "$TMP/e" > "$TMP/out1.txt"
for f in experiment.json split.json summary.json report.html f/model.safetensors g/model.safetensors \
         metrics/layermem.json metrics/layermem_table.csv metrics/unitmem.json metrics/consistency.csv \
         metrics/ttest.csv metrics/mumax.csv; do
  [ -s "$TMP/e/$f" ] || fail "experiment output lacks $f"
done
grep -q "LayerMem per tap" "$TMP/out1.txt" || fail "no LayerMem table printed"
grep -q "report: $TMP/e/report.html" "$TMP/out1.txt" || fail "no report path printed"
grep -q '"schema": "memloc.experiment/1"' "$TMP/e/summary.json" || fail "summary.json has no schema"
[ "$(grep -c '"holds"' "$TMP/e/summary.json")" -ge 5 ] || fail "summary.json lacks the findings"

# f trains on S_S + S_C, g on S_S + S_I (320/40/40 of 400)
grep -q '"indices": "0:360"' "$TMP/e/f/config.json" || fail "f's indices: $(grep indices "$TMP/e/f/config.json")"
grep -q '"indices": "0:320,360:400"' "$TMP/e/g/config.json" || fail "g's indices: $(grep indices "$TMP/e/g/config.json")"

# a re-run does not retrain: the encoders are untouched
before=$(md5sum "$TMP/e/f/model.safetensors" "$TMP/e/g/model.safetensors")
"$BIN" experiment "${args[@]}" --out "$TMP/e" > "$TMP/out2.txt"
[ "$before" = "$(md5sum "$TMP/e/f/model.safetensors" "$TMP/e/g/model.safetensors")" ] || fail "re-run retrained"
# an interrupted experiment (g unfinished) continues to the same result
cp -r "$TMP/e" "$TMP/i"
rm "$TMP/i/g/model.safetensors" "$TMP/i/summary.json" "$TMP/i/report.html"
rm -f "$TMP/i/g/checkpoints/epoch_0002.safetensors"
"$BIN" experiment "${args[@]}" --out "$TMP/i" > /dev/null
cmp "$TMP/e/g/model.safetensors" "$TMP/i/g/model.safetensors" || fail "resumed g differs"
cmp "$TMP/e/metrics/layermem_sslmem.npy" "$TMP/i/metrics/layermem_sslmem.npy" || fail "metrics differ after resume"
# other options into the same directory are refused
set +e
"$BIN" experiment "${args[@]}" --k 3 --out "$TMP/e" 2> "$TMP/err"; rc=$?
set -e
[ $rc = 73 ] || fail "other options into a used directory: exit $rc, expected 73"

# given weights: no training
"$BIN" experiment --data synthetic:400:32x32x3:4 --f "$TMP/e/f/model.safetensors" --g "$TMP/e/g/model.safetensors" \
  --eval 40 --top 10 --random 20 --k 2 --unit-k 2 --consistency-k 10 --quiet --out "$TMP/w" > /dev/null
[ ! -e "$TMP/w/f" ] || fail "--f/--g trained anyway"
cmp "$TMP/e/metrics/layermem_sslmem.npy" "$TMP/w/metrics/layermem_sslmem.npy" || fail "--f/--g metrics differ"
# the control: SSLMem of 40 shared and 40 independent points; with f and g
# exchanged (the same augmentation draws) every mean changes sign exactly
"$BIN" experiment --data synthetic:400:32x32x3:4 --f "$TMP/e/g/model.safetensors" --g "$TMP/e/f/model.safetensors" \
  --eval 40 --top 10 --random 20 --k 2 --unit-k 2 --consistency-k 10 --quiet --out "$TMP/x" > "$TMP/outx.txt"
grep -q "Control, shared points" "$TMP/outx.txt" || fail "no control printed"
grep -q "Memorized taps" "$TMP/outx.txt" || fail "no memorized taps printed"
python3 - "$TMP/w/summary.json" "$TMP/x/summary.json" <<'PY' || fail "the control"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
ca, cb = a["sslmem_control"], b["sslmem_control"]
assert ca["shared"]["n"] == 40 and ca["independent"]["n"] == 40, ca
for k in ("shared", "independent"):
    assert ca[k]["mean"] != 0 and abs(ca[k]["mean"] + cb[k]["mean"]) < 1e-6, (k, ca[k], cb[k])
assert abs(a["sslmem_test"]["mean"] + b["sslmem_test"]["mean"]) < 1e-6
f = {x["id"]: x for x in a["findings"]}["memorization_vs_shared"]
assert "p < 0.01" in f["claim"] and f["holds"] == (ca["candidates_vs_shared"]["p"] < 0.01 and a["sslmem_test"]["mean"] > ca["shared"]["mean"])
# per tap: every tap, the output's row equal to the output's figures, the
# excess their difference, and with f and g exchanged every mean flips sign
taps = [r["tap"] for r in a["layermem"]]
assert [r["tap"] for r in ca["taps"]] == taps and len(taps) == 10, ca["taps"]
out = ca["taps"][-1]
assert abs(out["shared"] - ca["shared"]["mean"]) < 1e-12 and abs(out["candidates"] - a["sslmem_test"]["mean"]) < 1e-12
assert abs(out["independent"] - ca["independent"]["mean"]) < 1e-12
for k in ("shared", "independent"):
    assert abs(out["vs_" + k]["p"] - ca["candidates_vs_" + k]["p"]) < 1e-12, (k, out, ca)
for ra, rb in zip(ca["taps"], cb["taps"]):
    for k in ("shared", "independent"):
        assert abs(ra["vs_" + k]["excess"] - (ra["candidates"] - ra[k])) < 1e-12, ra
    assert ra["memorized"] == (ra["vs_independent"]["excess"] > 0 and ra["vs_independent"]["p"] < 0.01), ra
    for k in ("candidates", "shared", "independent"):
        assert abs(ra[k] + rb[k]) < 1e-9, (k, ra, rb)
f = {x["id"]: x for x in a["findings"]}["memorization_vs_independent"]
assert f["holds"] == (ca["candidates_vs_independent"]["p"] < 0.01 and a["sslmem_test"]["mean"] > ca["independent"]["mean"])
# growth with depth of the excess over independent points: Kendall tau-b with depth, by hand
x = [r["vs_independent"]["excess"] for r in ca["taps"]]
pairs = [(i, j) for i in range(len(x)) for j in range(i + 1, len(x))]
tau = sum((x[j] > x[i]) - (x[j] < x[i]) for i, j in pairs) / len(pairs)
f = {x["id"]: x for x in a["findings"]}["grows_with_depth_controlled"]
assert ("tau %.3f," % tau) in f["evidence"], (tau, f)
n_mem = sum(r["memorized"] for r in ca["taps"])
assert ("memorized at %d of %d taps" % (n_mem, len(x))) in f["evidence"], (n_mem, f)
p = float(f["evidence"].split("one-sided p ")[1].split(";")[0])
assert f["holds"] == (x[-1] > x[0] and tau > 0 and p < 0.05 and n_mem > 0), (f, x, n_mem)
print("e2e: grows_with_depth_controlled tau %.3f p %.3g memorized taps %d holds %s" % (tau, p, n_mem, f["holds"]))
PY
# the control's points come from S_S (0:320) and S_I (360:400), and `memloc layermem`
# on those points (same seed, so the same views) gives the same scores at every tap;
# the per-tap means of the summary are the means of those columns
python3 - "$TMP/w/metrics" "$TMP/pts" <<'PY' || fail "the control's points"
import csv, sys
for sub, lo, hi in (("control_shared", 0, 320), ("control_independent", 360, 400)):
    idx = [int(r["index"]) for r in csv.DictReader(open(sys.argv[1] + "/" + sub + "/layermem_points.csv"))]
    assert len(idx) == 40 and len(set(idx)) == 40 and all(lo <= i < hi for i in idx), (sub, idx)
    open(sys.argv[2] + "." + sub, "w").write(",".join(map(str, idx)))
PY
for sub in control_shared control_independent; do
  "$BIN" layermem --f "$TMP/e/f/model.safetensors" --g "$TMP/e/g/model.safetensors" --data synthetic:400:32x32x3:4 \
    --candidates "$(cat "$TMP/pts.$sub")" --eval 0 --k 2 --top 10 --random 20 --quiet --out "$TMP/s_$sub" > /dev/null
done
python3 - "$TMP" <<'PY' || fail "the control differs from memloc layermem on its points"
import csv, json, sys
ctl = json.load(open(sys.argv[1] + "/w/summary.json"))["sslmem_control"]
for sub, key in (("control_shared", "shared"), ("control_independent", "independent")):
    read = lambda p: {r["index"]: r for r in csv.DictReader(open(p))}
    a, b = read(sys.argv[1] + "/w/metrics/" + sub + "/layermem_points.csv"), read(sys.argv[1] + "/s_" + sub + "/layermem_points.csv")
    assert a.keys() == b.keys(), sub
    cols = [c for c in next(iter(a.values())) if c not in ("index", "rank")]
    assert len(cols) == 11, cols  # sslmem_out and the 10 taps
    for k in a:
        for c in cols:
            x, y = float(a[k][c]), float(b[k][c])
            assert abs(x - y) <= 1e-12 + 1e-9 * abs(y), (sub, k, c, x, y)
    for row in ctl["taps"]:
        mean = sum(float(r[row["tap"]]) for r in a.values()) / len(a)
        assert abs(mean - row[key]) <= 1e-9 * max(1e-3, abs(mean)), (sub, row, mean)
PY

# the metric commands take the training's crop scale, so an experiment trained with
# --crop-scale-min is reproduced by memloc layermem with it (and not without it)
"$BIN" experiment --data synthetic:400:32x32x3:4 --f "$TMP/e/f/model.safetensors" --g "$TMP/e/g/model.safetensors" \
  --crop-scale-min 0.6 --eval 40 --top 10 --random 20 --k 2 --unit-k 2 --consistency-k 10 --quiet --out "$TMP/c" > /dev/null
pts=$(python3 -c 'import csv,sys; print(",".join(r["index"] for r in csv.DictReader(open(sys.argv[1]))))' \
  "$TMP/c/metrics/layermem_points.csv")
for crop in 0.6 0.08; do
  "$BIN" layermem --f "$TMP/e/f/model.safetensors" --g "$TMP/e/g/model.safetensors" --data synthetic:400:32x32x3:4 \
    --candidates "$pts" --eval 0 --k 2 --top 10 --random 20 --crop-scale-min $crop --quiet --out "$TMP/c$crop" > /dev/null
done
python3 - "$TMP" <<'PY' || fail "memloc layermem --crop-scale-min does not reproduce the experiment's scores"
import csv, sys
read = lambda p: {r["index"]: float(r["sslmem_out"]) for r in csv.DictReader(open(p))}
c, same, other = (read(sys.argv[1] + d + "/layermem_points.csv") for d in ("/c/metrics", "/c0.6", "/c0.08"))
assert c.keys() == same.keys() == other.keys()
assert all(abs(c[k] - same[k]) <= 1e-12 + 1e-9 * abs(c[k]) for k in c)
assert sum(abs(c[k] - other[k]) > 1e-6 for k in c) > len(c) // 2
PY

# the demo's defaults as docs/RECIPES.md and memloc demo --help state them; any option overrides them
"$BIN" demo --print-config > "$TMP/demo.json"
"$BIN" demo --print-config --lr 1e-3 --k 5 --data fmnist@0:100 > "$TMP/demo2.json"
python3 - "$TMP/demo.json" "$TMP/demo2.json" <<'PY' || fail "the demo's defaults"
import json, sys
d, o = (json.load(open(p)) for p in sys.argv[1:3])
t, x = d["train"], d["experiment"]
assert t["data"] == "fmnist@0:2000" and t["width"] == 0.5 and t["epochs"] == 60 and abs(t["lr"] - 3e-4) < 1e-12, t
assert t["crop_scale_min"] == 0.5 and t["aug_strength"] == 0.5 and x["k"] == 50, (t, x)
assert abs(o["train"]["lr"] - 1e-3) < 1e-12 and o["experiment"]["k"] == 5 and o["train"]["data"] == "fmnist@0:100", o
assert o["train"]["monitor_knn"] == "", o  # a demo on other data has no default monitor
PY

# the report in a browser: every table and chart present and non-empty
command -v chromium >/dev/null || fail "chromium is not installed (scripts/install-deps installs it)"
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --user-data-dir="$TMP/chrome" --dump-dom "file://$TMP/e/report.html" \
  > "$TMP/dom.html" 2> "$TMP/chrome.log" || fail "chromium failed: $(tail -3 "$TMP/chrome.log")"
# tables: findings, control per tap, LayerMem, UnitMem, mu_max, t-test, variants, train options, experiment options;
# charts: 2 LayerMem lines, 10 UnitMem histograms, bars, scatter, 2 heat maps, 2 training curves
python3 "$SRC/tests/e2e/check_dom.py" "$TMP/dom.html" --tables 9 --charts 18 \
  --require findings sslmem-test sslmem-control sslmem-control-taps layermem unitmem mumax scatter consistency ttest training config \
  || fail "report DOM check"
grep -q "reproduced" "$TMP/dom.html" || fail "no findings verdicts in the report"

# a ViT: UnitMem on |a| of its signed taps, and the attention-vs-MLP table per block with its finding
"$BIN" experiment --data synthetic:200:32x32x3:4 --arch vit_tiny --patch-size 8 --epochs 1 --batch-size 64 \
  --threads 2 --eval 30 --top 10 --random 20 --k 2 --unit-k 2 --consistency-k 10 --quiet --out "$TMP/v" > /dev/null
python3 - "$TMP/v/summary.json" <<'PY' || fail "ViT summary.json"
import json, sys
s = json.load(open(sys.argv[1]))
rows = s["vit_blocks"]
assert [r["block"] for r in rows] == list(range(12)), rows
lm = {r["tap"]: r["layermem"] for r in s["layermem"]}
for r in rows:  # each part's step, from the LayerMem column
    n = r["block"]
    before = lm["blocks.%d" % (n - 1)] if n else 0.0
    assert abs(r["attn_delta"] - (lm["blocks.%d.attn" % n] - before)) < 1e-9, r
    assert abs(r["mlp_delta"] - (lm["blocks.%d" % n] - lm["blocks.%d.attn" % n])) < 1e-9, r
f = [x for x in s["findings"] if x["id"] == "vit_mlp_deeper"]
assert len(f) == 1, s["findings"]
deeper = rows[6:]
assert f[0]["holds"] == (2 * sum(r["mlp_delta"] > r["attn_delta"] for r in deeper) > len(deeper)), f
assert "|a|" in s["variants"]["unit_activation"], s["variants"]
PY
# pruning a ViT by its UnitMem: 10% of each block's MLP hidden neurons, their fc1 rows and biases zeroed
"$BIN" prune --weights "$TMP/v/f/model.safetensors" --unitmem "$TMP/v/metrics" --by top --fraction 0.1 \
  --out "$TMP/vp.safetensors" > /dev/null || fail "prune on a ViT"
python3 - "$TMP/v/f/model.safetensors" "$TMP/vp.safetensors" <<'PY' || fail "ViT pruning changed the wrong parameters"
import json, struct, sys
def load(p):
    b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
    return {k: (v, b[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]]) for k, v in h.items() if k != "__metadata__"}
a, p = load(sys.argv[1]), load(sys.argv[2])
changed = sorted(k for k in a if a[k][1] != p[k][1])
assert changed == sorted("blocks.%d.mlp.fc1.%s" % (i, w) for i in range(12) for w in ("weight", "bias")), changed
for i in range(12):
    bias = struct.unpack("<768f", p["blocks.%d.mlp.fc1.bias" % i][1])
    w = struct.unpack("<%df" % (768 * 192), p["blocks.%d.mlp.fc1.weight" % i][1])
    zero = [u for u in range(768) if bias[u] == 0 and not any(w[u * 192:(u + 1) * 192])]
    assert len(zero) == 77, (i, len(zero))  # round(0.1 * 768)
PY
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --user-data-dir="$TMP/chrome" --dump-dom "file://$TMP/v/report.html" \
  > "$TMP/vdom.html" 2> "$TMP/chrome.log" || fail "chromium failed on the ViT report: $(tail -3 "$TMP/chrome.log")"
python3 "$SRC/tests/e2e/check_dom.py" "$TMP/vdom.html" --tables 9 --charts 3 --require findings layermem vit-blocks \
  || fail "ViT report DOM check"
echo "experiment_report: OK"
