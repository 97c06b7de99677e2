#!/usr/bin/env bash
# memloc train --method dino / simsiam end to end on a tiny model: checkpoints
# hold DINO's teacher and centre; a run interrupted by SIGINT or killed with
# SIGKILL and then resumed ends with bitwise the same model.safetensors (the
# teacher) and the same final checkpoint tensors (student, teacher, centre,
# optimizer state) as an uninterrupted run; the weights files open with their
# heads; bad DINO options name the option.
#   methods_resume.sh MEMLOC_BIN SOURCE_DIR
set -euo pipefail
BIN=$1
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
# the tensor bytes of a safetensors file (everything after its header)
st_data() { local n; n=$(od -An -t u8 -N8 "$1" | tr -d ' '); tail -c +$((9 + n)) "$1"; }

dino=(--method dino --data synthetic:192:32x32x3:4 --width 0.5 --proj-hidden 32 --proj-dim 16 --dino-out-dim 64
      --local-crops 2 --local-crop-size 16 --warmup-teacher-temp-epochs 2 --freeze-last-layer 1 --batch-size 32
      --epochs 3 --optimizer sgd --lr 0.05 --momentum 0.9 --threads 2 --workers 2 --log-every 2
      --checkpoint-every 1 --keep-checkpoints 0 --seed 11 --quiet)

# 1. uninterrupted reference run
"$BIN" train "${dino[@]}" --out "$TMP/a"
for f in config.json log.jsonl model.safetensors checkpoints/epoch_0001.safetensors checkpoints/epoch_0003.safetensors; do
  [ -s "$TMP/a/$f" ] || fail "dino run directory lacks $f"
done
ck=$TMP/a/checkpoints/epoch_0003.safetensors
for t in teacher.prep.conv.weight teacher.head.last_layer.weight_v teacher.layer2.batch.running_var \
         teacher.prep.batch.num_batches_tracked dino.center head.mlp.0.weight optim.momentum_buffer.prep.conv.weight; do
  grep -aq "\"$t\"" "$ck" || fail "checkpoint lacks $t"
done
grep -q '"method": "dino"' "$TMP/a/config.json" || fail "config.json does not record the method"
[ "$(grep -c '"type":"epoch"' "$TMP/a/log.jsonl")" = 3 ] || fail "log.jsonl should have 3 epoch lines"
"$BIN" info --weights "$TMP/a/model.safetensors" > "$TMP/info" || fail "memloc info cannot read the DINO weights"
grep -q "dino" "$TMP/info" || fail "memloc info does not show the dino head: $(cat "$TMP/info")"

# 2. SIGINT in the middle, then --resume
"$BIN" train "${dino[@]}" --out "$TMP/b" &
pid=$!
while [ ! -e "$TMP/b/checkpoints/epoch_0001.safetensors" ]; do sleep 0.05; kill -0 $pid 2>/dev/null || break; done
kill -INT $pid 2>/dev/null || true
set +e; wait $pid; rc=$?; set -e
echo "interrupted dino run exited with $rc; checkpoints: $(ls "$TMP/b/checkpoints" | tr '\n' ' ')"
if [ $rc -ne 0 ]; then
  [ $rc = 130 ] || fail "SIGINT exit code $rc, expected 130"
  [ ! -e "$TMP/b/model.safetensors" ] || fail "an interrupted run must not leave model.safetensors"
fi
"$BIN" train --resume "$TMP/b" --quiet
cmp "$TMP/a/model.safetensors" "$TMP/b/model.safetensors" || fail "dino: SIGINT + resume differs (teacher)"
cmp <(st_data "$ck") <(st_data "$TMP/b/checkpoints/epoch_0003.safetensors") \
  || fail "dino: SIGINT + resume: the final checkpoint's tensors differ (student, teacher, centre or optimizer)"
cmp <(grep '"type":"epoch"' "$TMP/a/log.jsonl" | sed 's/"views_per_s":[^,}]*//; s/"seconds":[^,}]*//') \
    <(grep '"type":"epoch"' "$TMP/b/log.jsonl" | sed 's/"views_per_s":[^,}]*//; s/"seconds":[^,}]*//') \
  || fail "dino: resumed log.jsonl epochs differ"

# 3. SIGKILL between checkpoints, then --resume
"$BIN" train "${dino[@]}" --out "$TMP/c" &
pid=$!
while [ ! -e "$TMP/c/checkpoints/epoch_0002.safetensors" ]; do sleep 0.02; kill -0 $pid 2>/dev/null || break; done
kill -KILL $pid 2>/dev/null || true
wait $pid 2>/dev/null || true
"$BIN" train --resume "$TMP/c" --quiet
cmp "$TMP/a/model.safetensors" "$TMP/c/model.safetensors" || fail "dino: SIGKILL + resume differs (teacher)"
cmp <(st_data "$ck") <(st_data "$TMP/c/checkpoints/epoch_0003.safetensors") \
  || fail "dino: SIGKILL + resume: the final checkpoint's tensors differ"

# 4. --dino-export student writes the student, which differs from the teacher
"$BIN" train "${dino[@]}" --epochs 1 --dino-export student --out "$TMP/s"
"$BIN" train "${dino[@]}" --epochs 1 --out "$TMP/t"
! cmp -s <(st_data "$TMP/s/model.safetensors") <(st_data "$TMP/t/model.safetensors") \
  || fail "dino: the student export equals the teacher export"

# 5. SimSiam: interrupted and resumed, bitwise the same
simsiam=(--method simsiam --data synthetic:128:32x32x3:4 --width 0.5 --proj-hidden 32 --proj-dim 16 --pred-hidden 8
         --batch-size 32 --epochs 2 --optimizer sgd --lr 0.05 --momentum 0.9 --threads 2 --workers 2
         --checkpoint-every 1 --keep-checkpoints 0 --seed 5 --quiet)
"$BIN" train "${simsiam[@]}" --out "$TMP/sa"
"$BIN" train "${simsiam[@]}" --out "$TMP/sb" &
pid=$!
while [ ! -e "$TMP/sb/checkpoints/epoch_0001.safetensors" ]; do sleep 0.02; kill -0 $pid 2>/dev/null || break; done
kill -KILL $pid 2>/dev/null || true
wait $pid 2>/dev/null || true
"$BIN" train --resume "$TMP/sb" --quiet
cmp "$TMP/sa/model.safetensors" "$TMP/sb/model.safetensors" || fail "simsiam: SIGKILL + resume differs"
grep -aq '"predictor.3.weight"' "$TMP/sa/model.safetensors" || fail "simsiam weights lack the predictor"

# 6. bad options name the option and what it accepts
set +e
"$BIN" train "${dino[@]}" --local-crop-scale-min 0.6 --out "$TMP/x" 2> "$TMP/err"; rc=$?
set -e
[ $rc = 78 ] || fail "bad --local-crop-scale-min: exit $rc, expected 78"
grep -q "local_crop_scale_min" "$TMP/err" || fail "bad --local-crop-scale-min message: $(cat "$TMP/err")"
set +e
"$BIN" train "${dino[@]}" --local-crop-size 8 --out "$TMP/y" 2> "$TMP/err"; rc=$?
set -e
[ $rc = 64 ] || fail "--local-crop-size 8 on ResNet9: exit $rc, expected 64"
grep -q "16x16" "$TMP/err" || fail "--local-crop-size 8 message: $(cat "$TMP/err")"
# DINO on a ViT: local crops of another size read the global crops' position
# embeddings interpolated to their grid (DINO's interpolate_pos_encoding), so
# pos_embed keeps the global grid (4x4 patches of 8 + CLS = 17 rows); a local
# size that is not a multiple of the patch is refused before anything is written
set +e
"$BIN" train --data synthetic:32:32x32x3:4 --method dino --arch vit_tiny --patch-size 8 --local-crops 1 \
  --local-crop-size 12 --out "$TMP/vd" 2> "$TMP/err"; rc=$?
set -e
[ $rc = 78 ] || fail "DINO ViT with 12x12 local crops and patch 8: exit $rc, expected 78"
grep -q "local_crop_size: 12 on a ViT, expected a multiple of patch_size (8)" "$TMP/err" ||
  fail "DINO ViT local crop message: $(cat "$TMP/err")"
[ ! -e "$TMP/vd" ] || fail "a refused DINO ViT run left $TMP/vd"
"$BIN" train --data synthetic:32:32x32x3:4 --method dino --arch vit_tiny --patch-size 8 --local-crops 2 \
  --local-crop-size 16 --batch-size 16 --epochs 1 --threads 2 --quiet --out "$TMP/vd"
grep -aq '"pos_embed":{"dtype":"F32","shape":\[1,17,192\]' "$TMP/vd/model.safetensors" ||
  fail "DINO ViT with 16x16 local crops: pos_embed is not [1, 17, 192]"
grep -aq '"blocks.11.mlp.fc1.weight"' "$TMP/vd/model.safetensors" || fail "DINO ViT weights lack the encoder"
# drop-path (stochastic depth) on a ViT: the same seed draws the same masks
# (bitwise the same weights), another seed others; ResNet9 refuses the option
vdp=(--data synthetic:32:32x32x3:4 --arch vit_tiny --patch-size 8 --drop-path 0.3 --proj-hidden 32 --proj-dim 16
     --batch-size 16 --epochs 2 --threads 2 --quiet)
"$BIN" train "${vdp[@]}" --seed 5 --out "$TMP/dp1"
"$BIN" train "${vdp[@]}" --seed 5 --out "$TMP/dp2"
"$BIN" train "${vdp[@]}" --seed 5 --drop-path 0 --out "$TMP/dp0"
cmp "$TMP/dp1/model.safetensors" "$TMP/dp2/model.safetensors" || fail "drop-path: the same seed gives other weights"
! cmp -s "$TMP/dp1/model.safetensors" "$TMP/dp0/model.safetensors" || fail "drop-path 0.3 trains the same as 0"
grep -q '"drop_path": 0.29999' "$TMP/dp1/config.json" || fail "config.json does not record drop_path"
set +e
"$BIN" train --data synthetic:64 --drop-path 0.1 --out "$TMP/dpr" 2> "$TMP/err"; rc=$?
set -e
[ $rc = 78 ] || fail "--drop-path on ResNet9: exit $rc, expected 78"
grep -q "option drop_path: 0.1, expected a ViT" "$TMP/err" || fail "--drop-path on ResNet9 message: $(cat "$TMP/err")"
set +e
"$BIN" train --data synthetic:64 --method byol --out "$TMP/z" 2> "$TMP/err"; rc=$?
set -e
[ $rc = 78 ] || fail "bad --method: exit $rc, expected 78"
grep -q "simclr|supervised|simsiam|dino" "$TMP/err" || fail "bad --method message: $(cat "$TMP/err")"

# 7. --stem imagenet: a ResNet18 with the 7x7 stride-2 stem and maxpool trains,
#    its weights record the stem and reopen with it; ResNet9 refuses the option
"$BIN" train --data synthetic:64:64x64x3:4 --image-size 64 --arch resnet18 --stem imagenet --width 0.125 \
  --proj-hidden 32 --proj-dim 16 --batch-size 16 --epochs 1 --threads 2 --quiet --out "$TMP/stem"
grep -q '"stem": "imagenet"' "$TMP/stem/config.json" || fail "config.json does not record the stem"
"$BIN" info --weights "$TMP/stem/model.safetensors" > "$TMP/info" || fail "memloc info cannot read the ResNet18 weights"
grep -q "imagenet stem" "$TMP/info" || fail "the weights do not reopen with the imagenet stem: $(cat "$TMP/info")"
grep -q "16x16" "$TMP/info" || fail "imagenet stem on 64x64: expected 16x16 after the stem: $(head -5 "$TMP/info")"
set +e
"$BIN" train --data synthetic:64 --stem imagenet --out "$TMP/s9" 2> "$TMP/err"; rc=$?
set -e
[ $rc = 78 ] || fail "--stem imagenet on ResNet9: exit $rc, expected 78"
grep -q "option stem" "$TMP/err" || fail "--stem imagenet on ResNet9 message: $(cat "$TMP/err")"
echo "methods_resume: OK"
