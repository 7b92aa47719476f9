#!/usr/bin/env bash
# Run HERE (the CPU machine), once per session, before any device call: fills the
# git-ignored folder gpu_carry/ with what the GPU session needs and cannot fetch there
# (the device machine reaches no network; only the checkout and carried paths travel).
#
#   bash gpu/prepare.sh            # then: run(command="bash gpu/session.sh PART", carry=["gpu_carry"])
#
# gpu_carry/cifar10_jpeg.tar.gz   the offline CIFAR-10 JPEG copy (19.6 MB, ../shared/data/cifar10-jpeg)
# gpu_carry/mnist/*.gz            the four MNIST IDX files, gzipped (about 11 MB)
# gpu_carry/official_ncsn.tar.gz  ermongroup/ncsn's code (no assets), for the official step anchor;
#                                 never committed (gpu_carry/ is ignored)
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-../shared/data}
OFFICIAL=${OFFICIAL:-/work/official_ncsn}   # a checkout of ermongroup/ncsn (the search tool's fetch)
mkdir -p gpu_carry/mnist
cp -u "$SHARED/cifar10-jpeg/cifar10_jpeg.tar.gz" gpu_carry/
for f in "$SHARED"/MNIST/raw/*-ubyte; do
  [ -f "gpu_carry/mnist/$(basename "$f").gz" ] || gzip -c "$f" > "gpu_carry/mnist/$(basename "$f").gz"
done
if [ -d "$OFFICIAL/.git" ]; then
  tar czf gpu_carry/official_ncsn.tar.gz -C "$OFFICIAL" models losses runners configs
else
  echo "warning: no official checkout at $OFFICIAL; the official step anchor will be skipped" >&2
fi
du -sh gpu_carry; du -sh --exclude=.git --exclude=.venv --exclude=data/MNIST --exclude=data/cifar10-jpeg --exclude=_build . 
