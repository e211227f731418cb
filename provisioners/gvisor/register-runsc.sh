#!/usr/bin/env bash
# Installs gVisor (runsc, Debian's package) and registers it with Docker as the runtime `runsc`,
# the sandbox leases without GPUs run under when runtime.sandbox is auto or runsc. Idempotent: a
# second run changes nothing. The one way to register it: install.sh --with-gvisor,
# scripts/ensure-docker.sh and CI all call this script.
#
#   sudo provisioners/gvisor/register-runsc.sh [--daemon-json PATH] [--runsc PATH] [--no-install] [--no-reload]
#
# --daemon-json PATH  the engine's config to merge into (default /etc/docker/daemon.json)
# --runsc PATH        the runsc binary to register (default: the one on PATH, else /usr/bin/runsc)
# --no-install        do not apt-get install runsc when it is missing (register only)
# --no-reload         do not SIGHUP dockerd afterwards (it reads daemon.json at its next start)
#
# The file is merged, never rewritten from scratch: every other key the operator set stays as it
# was, and a file that is not valid JSON is left untouched (the script fails and says so).
# `--network=host` is required: gVisor's own network stack refuses to start inside Docker's
# network namespace here ("cannot run with network enabled in root network namespace"); with it the
# sandbox uses the container's own namespace, so its traffic still crosses the lease's veth and
# bridge and the lease's firewall applies.
set -euo pipefail

daemon_json=/etc/docker/daemon.json
runsc=""
install=1
reload=1
while [ $# -gt 0 ]; do
  case "$1" in
    --daemon-json) daemon_json=$2; shift 2 ;;
    --runsc) runsc=$2; shift 2 ;;
    --no-install) install=0; shift ;;
    --no-reload) reload=0; shift ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "register-runsc.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

if [ -z "$runsc" ]; then
  if ! command -v runsc >/dev/null 2>&1 && [ "$install" -eq 1 ]; then
    echo "gvisor: installing runsc from Debian"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq runsc >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq runsc >/dev/null; }
  fi
  runsc=$(command -v runsc || echo /usr/bin/runsc)
fi
if [ ! -x "$runsc" ]; then
  if [ "$install" -eq 1 ]; then
    echo "register-runsc.sh: no runsc at $runsc: install it (apt-get install runsc) or pass --runsc PATH" >&2
    exit 1
  fi
  # An image being built: the binary comes with its packages later.
  echo "gvisor: WARN no runsc at $runsc yet: install it before dockerd starts" >&2
fi

# Node is what the provider itself runs on, so it is there wherever this script is: a JSON merge
# in it is exact where sed on JSON is not. Exit 0: written; 3: already registered as wanted.
set +e
node - "$daemon_json" "$runsc" <<'EOF'
const fs = require('node:fs');
const path = require('node:path');
const [file, runsc] = process.argv.slice(2);
let config = {};
let mode = 0o644;
if (fs.existsSync(file)) {
  const text = fs.readFileSync(file, 'utf8');
  mode = fs.statSync(file).mode & 0o777;
  try {
    config = text.trim() === '' ? {} : JSON.parse(text);
  } catch (err) {
    console.error(`register-runsc.sh: ${file} is not valid JSON (${err.message}); left untouched: fix it, then run this again`);
    process.exit(1);
  }
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    console.error(`register-runsc.sh: ${file} does not hold a JSON object; left untouched`);
    process.exit(1);
  }
}
const runtimes = typeof config.runtimes === 'object' && config.runtimes !== null ? config.runtimes : {};
const existing = runtimes.runsc ?? {};
// Arguments the operator gave runsc (--nvproxy, --platform=kvm...) stay; only the network is ours.
const args = (Array.isArray(existing.runtimeArgs) ? existing.runtimeArgs : []).filter((arg) => !/^--network(=|$)/.test(arg));
const wanted = { ...existing, path: runsc, runtimeArgs: ['--network=host', ...args] };
if (JSON.stringify(existing) === JSON.stringify(wanted)) process.exit(3);
config.runtimes = { ...runtimes, runsc: wanted };
fs.mkdirSync(path.dirname(file), { recursive: true });
const temp = `${file}.provider-${process.pid}`;
fs.writeFileSync(temp, `${JSON.stringify(config, null, 2)}\n`, { mode });
fs.renameSync(temp, file);
EOF
merged=$?
set -e
case "$merged" in
  0) echo "gvisor: registered runsc ($runsc --network=host) in $daemon_json" ;;
  3) echo "gvisor: runsc already registered in $daemon_json"; exit 0 ;;
  *) exit 1 ;;
esac

if [ "$reload" -eq 1 ]; then
  # dockerd re-reads its runtimes on SIGHUP: no restart, running containers untouched.
  if pid=$(pidof dockerd); then
    kill -HUP $pid
    for _ in $(seq 1 20); do
      if docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '"runsc"'; then
        echo "gvisor: dockerd reloaded: runtime runsc available"
        exit 0
      fi
      sleep 0.5
    done
    echo "register-runsc.sh: dockerd did not list runsc after SIGHUP; check $daemon_json and the engine's log" >&2
    exit 1
  fi
  echo "gvisor: dockerd is not running: it reads $daemon_json when it starts"
fi
