#!/usr/bin/env bash
# The GPU session of issues 12 and 13, run ON THE DEVICE MACHINE by the device tool:
#
#   run(command="bash gpu/session.sh tests bench-cifar10", carry=["gpu_carry"], timeout_s=600)
#
# PARTS (run in the order given; each writes under $OUT, which comes back):
#   tests          tests/test_cuda.py (resume, NCSNv2 options, fast path on real CIFAR-10, sampler, inpainting, NCCL)
#   bench-cifar10  python -m ncsn_edu.benchmark, CIFAR-10 network (ngf 128), batch 128, real data
#   bench-mnist    the same for the MNIST network (ngf 64)
#   official       the official trainer's training step (ermongroup/ncsn) at batch 128, the anchor
#   profile        torch.profiler: the fast path's top kernels by GPU time
#   agree          issue 20: bf16 and fp16 against fp32, loss per noise level, the book's MNIST
#                  model on 256 real test digits (python -m ncsn_edu.images.precision --device cuda)
#   train-mnist    issue 13: the paper's MNIST network for $MINUTES minutes, then samples,
#                  Figure 4 chains (uint8), inpaintings (samples as uint8 shards, weights in fp16);
#                  Figure 9's neighbours are computed afterwards on a CPU from the shards
#   train-cifar10  issue 13: the paper's CIFAR-10 network for $MINUTES minutes, 256 samples,
#                  inpaintings of held-out test images
# TINY=1 shrinks every part to seconds: that is how this script is rehearsed on a CPU
# (`TINY=1 OUT=/tmp/out DEVICE=cpu bash gpu/session.sh tests bench-mnist ...`).
# The machine has torch, torchvision, numpy, pytest, tqdm; the package is used from the
# checkout through PYTHONPATH (no install, so nothing is fetched).
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export CUBLAS_WORKSPACE_CONFIG=:4096:8
OUT=${OUT:?set OUT}; mkdir -p "$OUT"
PY=${PY:-python3}
TINY=${TINY:-0}
DEVICE=${DEVICE:-cuda}
MINUTES=${MINUTES:-8}
export NCSN_EDU_DATA=${NCSN_EDU_DATA:-$PWD/gpu_carry/datasets}
LOG="$OUT/session.log"
say() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$LOG"; }

setup() {
  [ -f "$NCSN_EDU_DATA/.ready" ] && return
  mkdir -p "$NCSN_EDU_DATA/MNIST/raw" "$NCSN_EDU_DATA/cifar10-jpeg"
  tar xzf gpu_carry/cifar10_jpeg.tar.gz -C "$NCSN_EDU_DATA/cifar10-jpeg"
  for f in gpu_carry/mnist/*.gz; do gunzip -c "$f" > "$NCSN_EDU_DATA/MNIST/raw/$(basename "${f%.gz}")"; done
  if [ -f gpu_carry/official_ncsn.tar.gz ]; then mkdir -p gpu_carry/official_ncsn && tar xzf gpu_carry/official_ncsn.tar.gz -C gpu_carry/official_ncsn; fi
  touch "$NCSN_EDU_DATA/.ready"
  { date -u; uname -a; nvidia-smi 2>&1 | head -15
    $PY -c "import torch, torchvision, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'torchvision', torchvision.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU')"
  } >> "$LOG" 2>&1
  say "setup done"
}

if [ "$TINY" = 1 ]; then
  BENCH_ARGS=(--ngf 8 --batch-size 8 --steps 2 --warmup 1 --sample-batch 4 --sample-evals 2 --agreement-steps 6 --tolerance 0.5 --fast-compile off)
  OFFICIAL_ARGS=(--ngf 8 --batch 8 --steps 2 --warmup 1)
  TRAIN_ARGS=(--ngf 8 --batch-size 8 --n-iters 4 --ckpt-every 2 --test-batches 1 --sample-every 100000 --sample-n 4 --sample-steps-each 1 --compile off)
  SAMPLE_ARGS=(--steps-each 1); N_SAMPLES=8; N_CIFAR=8; NN_INPAINT=2; N_AGREE=4
else
  BENCH_ARGS=(--batch-size 128 --steps 50 --warmup 10 --sample-batch 500 --sample-evals 20 --agreement-steps 300)
  OFFICIAL_ARGS=(--batch 128 --steps 50 --warmup 10)
  TRAIN_ARGS=(--max-minutes "$MINUTES" --ckpt-every 2000 --sample-every 100000 --test-every 500)
  SAMPLE_ARGS=(); N_SAMPLES=1000; N_CIFAR=256; NN_INPAINT=8; N_AGREE=256
fi

part_tests() {
  say "CUDA tests"
  NCSN_EDU_TEST_DEVICE=$DEVICE NCSN_EDU_CUDA_REPORT="$OUT/cuda_tests.jsonl" \
    $PY -m pytest tests/test_cuda.py -v -rs -p no:cacheprovider 2>&1 | tee "$OUT/cuda_tests.log" | tail -12
}
part_bench() {  # $1 = data set
  say "benchmark $1"
  $PY -m ncsn_edu.benchmark --dataset "$1" --device "$DEVICE" --data real "${BENCH_ARGS[@]}" \
    --out "$OUT/bench_$1.json" 2>&1 | tee -a "$LOG" | tail -30
}
part_official() {
  say "official training step"
  for ds in cifar10 mnist; do
    $PY gpu/official_step.py --official gpu_carry/official_ncsn --dataset $ds --device "$DEVICE" \
      "${OFFICIAL_ARGS[@]}" --out "$OUT/official_$ds.json" 2>&1 | tee -a "$LOG" | tail -5
  done
}
part_profile() {
  say "profile of the fast path"
  $PY gpu/profile_step.py --dataset cifar10 --device "$DEVICE" $([ "$TINY" = 1 ] && echo --ngf 8 --batch 8 --compile off) \
    --out "$OUT/profile_cifar10.txt" 2>&1 | tee -a "$LOG" | tail -25
}
part_agree() {
  say "per-level precision agreement on $DEVICE"
  $PY -m ncsn_edu.images.precision data/mnist_ncsn_ngf16.pt --device "$DEVICE" --n-images "$N_AGREE" \
    --out "$OUT/precision_agreement_mnist_$DEVICE.json" 2>&1 | tee -a "$LOG" | tail -14
}
part_train() {  # $1 = data set
  local ds=$1 run=gpu_carry/runs/$1
  say "train $ds ($([ "$TINY" = 1 ] && echo "tiny rehearsal" || echo "$MINUTES min"))"
  $PY -m ncsn_edu.train_images --dataset "$ds" --device "$DEVICE" --out "$run" --no-progress "${TRAIN_ARGS[@]}" 2>&1 | tee -a "$LOG" | tail -5
  cp "$run/metrics.csv" "$OUT/${ds}_metrics.csv"
  local n=$N_SAMPLES; [ "$ds" = cifar10 ] && n=$N_CIFAR
  say "sample $n from $ds"
  $PY -m ncsn_edu.sample_images sample "$run/checkpoint.pt" --device "$DEVICE" --n "$n" --batch "$n" \
    --shards "$OUT/${ds}_samples" --grid "$OUT/${ds}_grid.png" --no-progress "${SAMPLE_ARGS[@]}" 2>&1 | tee -a "$LOG" | tail -3
  say "inpaint $ds"
  $PY -m ncsn_edu.sample_images inpaint "$run/checkpoint.pt" --device "$DEVICE" --n-images "$NN_INPAINT" \
    --grid "$OUT/${ds}_inpaint.png" --no-progress "${SAMPLE_ARGS[@]}" 2>&1 | tee -a "$LOG" | tail -3
  say "Figure 4 chains of $ds"
  $PY gpu/figure4_chains.py "$run/checkpoint.pt" --device "$DEVICE" --n 10 --keep-every 50 \
    --out "$OUT/${ds}_chains.npz" "${SAMPLE_ARGS[@]}" 2>&1 | tee -a "$LOG" | tail -2
  if [ "$ds" = mnist ]; then  # weights in half precision, small enough to come back (and to commit)
    $PY -c "import torch,sys; c=torch.load(sys.argv[1], weights_only=True); torch.save({k:(v.half() if v.is_floating_point() else v) for k,v in c['model'].items()}, sys.argv[2])" \
      "$run/checkpoint.pt" "$OUT/mnist_ngf64_fp16_weights.pt"
  fi
}

setup
for part in "$@"; do
  case $part in
    tests) part_tests ;;
    bench-cifar10) part_bench cifar10 ;;
    bench-mnist) part_bench mnist ;;
    official) part_official ;;
    profile) part_profile ;;
    agree) part_agree ;;
    train-mnist) part_train mnist ;;
    train-cifar10) part_train cifar10 ;;
    *) say "unknown part $part"; exit 2 ;;
  esac
done
say "done: $*"
ls -la "$OUT" | tee -a "$LOG"
