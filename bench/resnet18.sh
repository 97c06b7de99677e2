#!/usr/bin/env bash
# torchvision ResNet18 (CIFAR stem), fp32: a SimCLR training step (2 x 128
# views, Adam) and an eval forward of 128 images returning every tap; memloc
# vs the PyTorch peer.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
peer_env >/dev/null
encoder_bench resnet18
