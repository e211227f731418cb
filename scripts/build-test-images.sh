#!/usr/bin/env bash
# Builds the images the tests run, without any registry: Debian's busybox-static copied into an
# empty rootfs with every applet linked, then `docker import`ed. Idempotent: an image that is
# already there is kept.
set -euo pipefail

image=provider-test/busybox:latest

if docker image inspect "$image" >/dev/null 2>&1; then
  echo "test images: $image already present"
  exit 0
fi

if ! command -v busybox >/dev/null 2>&1 || ! busybox --list >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq busybox-static >/dev/null
fi

rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
mkdir -p "$rootfs"/{bin,etc,tmp,proc,sys,dev,root}
chmod 1777 "$rootfs/tmp"
cp "$(command -v busybox)" "$rootfs/bin/busybox"
for applet in $(busybox --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"

tar -C "$rootfs" -c . | docker import \
  --change 'ENV PATH=/bin' \
  --change 'CMD ["/bin/sh"]' \
  - "$image" >/dev/null
echo "test images: built $image ($(docker image inspect -f '{{.Size}}' "$image") bytes)"
