#!/usr/bin/env bash
# Stand-ins for the official node:20-bookworm and node:20-bookworm-slim images, for machines that
# cannot reach Docker Hub (this project's CI): a Debian bookworm rootfs from debootstrap, with this
# machine's Node.js and npm laid out as the official images lay them out (/usr/local), and their
# `node` user, `docker import`ed under the official names. The Dockerfile stays what users build.
# An image already present under a name is kept (a real one included).
set -euo pipefail

node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" = 20 ] || { echo "node-base: this machine's Node is $node_major, the stand-ins must be 20" >&2; exit 1; }
cache=${PROVIDER_CI_CACHE:-/var/cache/provider-ci}
mkdir -p "$cache"

command -v debootstrap >/dev/null 2>&1 || {
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null
}

npm_dir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")

build() {
  local image=$1 include=$2
  if docker image inspect "$image" >/dev/null 2>&1; then
    echo "node-base: $image already present"
    return
  fi
  local rootfs="$cache/rootfs-${image//[:\/]/-}"
  if [ ! -x "$rootfs/usr/bin/apt-get" ]; then
    rm -rf "$rootfs"
    echo "node-base: debootstrap bookworm for $image"
    debootstrap --variant=minbase ${include:+--include=$include} bookworm "$rootfs" http://deb.debian.org/debian >"$cache/debootstrap.log" 2>&1 \
      || { tail -20 "$cache/debootstrap.log" >&2; exit 1; }
  fi
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  install -D -m 0755 "$(command -v node)" "$rootfs/usr/local/bin/node"
  rm -rf "$rootfs/usr/local/lib/node_modules/npm"
  mkdir -p "$rootfs/usr/local/lib/node_modules"
  cp -a "$npm_dir" "$rootfs/usr/local/lib/node_modules/npm"
  ln -sfn ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
  ln -sfn ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
  # This machine's trust store: where TLS to the registries goes through a proxy with its own
  # CA, the stand-in must trust it as this machine does (the official image has no need to).
  if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
    mkdir -p "$rootfs/usr/local/etc"
    echo 'cafile=/etc/ssl/certs/ca-certificates.crt' >"$rootfs/usr/local/etc/npmrc"
  fi
  # Node's headers, and npm told where they are, as on this machine: native addons
  # (better-sqlite3) then build without fetching headers from nodejs.org.
  if [ -d /usr/include/node ]; then
    rm -rf "$rootfs/usr/local/include/node"
    mkdir -p "$rootfs/usr/local/include" && cp -a /usr/include/node "$rootfs/usr/local/include/node"
    mkdir -p "$rootfs/usr/local/etc"
    echo 'nodedir=/usr/local' >>"$rootfs/usr/local/etc/npmrc"
  fi
  grep -q '^node:' "$rootfs/etc/passwd" || {
    echo 'node:x:1000:1000::/home/node:/bin/bash' >>"$rootfs/etc/passwd"
    echo 'node:x:1000:' >>"$rootfs/etc/group"
    mkdir -p "$rootfs/home/node" && chown 1000:1000 "$rootfs/home/node"
  }
  tar -C "$rootfs" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV NODE_VERSION='"$(node -p 'process.versions.node')" \
    --change 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt' \
    --change 'CMD ["node"]' \
    --message 'stand-in for the official image, built by scripts/build-node-base-images.sh' \
    - "$image" >/dev/null
  echo "node-base: built stand-in $image"
}

build node:20-bookworm-slim ""
# The full image is buildpack-deps: compilers and python for native addons (better-sqlite3).
build node:20-bookworm "ca-certificates,python3,make,g++"
