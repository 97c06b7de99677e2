#!/usr/bin/env bash
# The paper's ResNet9, fp32: a SimCLR training step (2 x 256 views, Adam) and an
# eval forward of 256 images returning every tap; memloc vs the PyTorch peer.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
peer_env >/dev/null
encoder_bench resnet9
