#!/usr/bin/env bash
# Sets up GPU passthrough for Docker on a Debian/Ubuntu host with an NVIDIA driver: installs the
# NVIDIA Container Toolkit from NVIDIA's apt repository, registers the nvidia runtime with Docker,
# writes a CDI spec, restarts Docker and checks that a container sees the GPUs. Idempotent.
#
#   sudo provisioners/nvidia/setup-container-toolkit.sh [--cdi-only] [--test-image IMAGE]
#
# After it, `provider capacity` should show "GPU passthrough: yes". Set gpu.mode: cdi in the
# provider config to use CDI device names instead of the runtime hook.
set -euo pipefail

cdi_only=0
test_image=""
while [ $# -gt 0 ]; do
  case "$1" in
    --cdi-only) cdi_only=1; shift ;;
    --test-image) test_image=$2; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup-container-toolkit.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

[ "$(id -u)" -eq 0 ] || { echo "run as root (sudo)" >&2; exit 1; }
command -v nvidia-smi >/dev/null 2>&1 || { echo "nvidia-smi not found: install the NVIDIA driver first (apt-get install nvidia-driver), reboot, and check that nvidia-smi lists your GPUs" >&2; exit 1; }
nvidia-smi -L >/dev/null || { echo "nvidia-smi cannot talk to the driver: reboot after installing the driver, and check dmesg for NVRM errors" >&2; exit 1; }
command -v docker >/dev/null 2>&1 || { echo "Docker is not installed" >&2; exit 1; }

if ! command -v nvidia-ctk >/dev/null 2>&1; then
  echo "== installing the NVIDIA Container Toolkit from NVIDIA's apt repository"
  keyring=/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg
  curl -fsSL https://nvidia.github.io/libnvidia-container/gpgkey | gpg --dearmor --yes -o "$keyring"
  curl -fsSL https://nvidia.github.io/libnvidia-container/stable/deb/nvidia-container-toolkit.list \
    | sed "s#deb https://#deb [signed-by=$keyring] https://#g" >/etc/apt/sources.list.d/nvidia-container-toolkit.list
  apt-get update -qq
  apt-get install -y -qq nvidia-container-toolkit
fi
echo "== $(nvidia-ctk --version | head -n1)"

echo "== writing the CDI spec /etc/cdi/nvidia.yaml"
mkdir -p /etc/cdi
nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml
nvidia-ctk cdi list

if [ "$cdi_only" -eq 0 ]; then
  echo "== registering the nvidia runtime with Docker"
  nvidia-ctk runtime configure --runtime=docker
fi
echo "== restarting Docker"
systemctl restart docker

if [ -n "$test_image" ]; then
  echo "== checking a container sees the GPUs ($test_image)"
  docker run --rm --gpus all "$test_image" nvidia-smi -L
fi
echo "== done: run 'provider capacity' to see the GPUs offered"
