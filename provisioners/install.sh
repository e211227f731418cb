#!/usr/bin/env bash
# Installs the provider daemon as a systemd service on a Debian/Ubuntu host. Idempotent: run it
# again after an upgrade; it changes only what differs and never overwrites your config.
#
#   sudo provisioners/install.sh [--app-dir /opt/provider] [--no-build] [--with-gvisor] [--root DIR]
#
# --with-gvisor installs gVisor (runsc) and registers it with Docker (provisioners/gvisor/
# register-runsc.sh: merged into /etc/docker/daemon.json, dockerd reloaded): leases without GPUs
# then run under it (runtime.sandbox: auto).
# --root DIR installs under DIR as if it were / (for image builds and tests): no user is
# created, systemd is not told, and the host checks are skipped.
set -euo pipefail

src_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
app_dir=/opt/provider
root=""
build=1
gvisor=0

while [ $# -gt 0 ]; do
  case "$1" in
    --app-dir) app_dir=$2; shift 2 ;;
    --root) root=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    --with-gvisor) gvisor=1; shift ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

say() { printf '%s\n' "$*"; }
changed=0
note_change() { changed=1; say "  $*"; }

# Installs a file only when its content differs, so a second run reports nothing changed.
install_file() {
  local mode=$1 from=$2 to=$3
  if [ -f "$to" ] && cmp -s "$from" "$to"; then return 0; fi
  install -D -m "$mode" "$from" "$to"
  note_change "installed $to"
}

ensure_dir() {
  local mode=$1 owner=$2 dir=$3
  if [ ! -d "$dir" ]; then
    install -d -m "$mode" "$dir"
    note_change "created $dir"
  fi
  if [ -z "$root" ]; then chown "$owner" "$dir"; fi
  chmod "$mode" "$dir"
}

if [ -z "$root" ] && [ "$(id -u)" -ne 0 ]; then
  echo "install.sh: run as root (sudo), or with --root DIR to install into a directory" >&2
  exit 1
fi

say "== provider: installing from $src_dir"

# Node.js: the daemon needs 20.19 or later.
if ! command -v node >/dev/null 2>&1; then
  echo "install.sh: Node.js is not installed. Install Node.js 20 LTS or later (e.g. from https://nodejs.org or NodeSource's Debian packages), then run this again." >&2
  exit 1
fi
node_version=$(node -p 'process.versions.node')
if ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)'; then
  echo "install.sh: Node.js $node_version is too old; the provider needs 20.19 or later." >&2
  exit 1
fi

# The application: a copy of this checkout, built, with a command on PATH.
target="$root$app_dir"
say "-- application in $app_dir"
mkdir -p "$target"
(cd "$src_dir" && tar --exclude=./node_modules --exclude=./.git --exclude=./dist -cf - .) | (cd "$target" && tar -xf -)
if [ "$build" -eq 1 ]; then
  (cd "$target" && npm ci --no-audit --no-fund --loglevel=error && npm prune --omit=dev --no-audit --no-fund --loglevel=error)
  note_change "built $app_dir"
fi
mkdir -p "$root/usr/local/bin"
if [ "$(readlink "$root/usr/local/bin/provider" 2>/dev/null)" != "$app_dir/bin/provider" ]; then
  ln -sfn "$app_dir/bin/provider" "$root/usr/local/bin/provider"
  note_change "linked /usr/local/bin/provider -> $app_dir/bin/provider"
fi

# The service user: owns the data dir, reaches Docker through the docker group.
if [ -z "$root" ]; then
  say "-- service user"
  if ! id provider >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/provider --no-create-home --shell /usr/sbin/nologin provider
    note_change "created user provider"
  fi
  if getent group docker >/dev/null && ! id -nG provider | tr ' ' '\n' | grep -qx docker; then
    usermod -aG docker provider
    note_change "added provider to the docker group"
  fi
fi

say "-- directories and config"
ensure_dir 0750 root:provider "$root/etc/provider"
ensure_dir 0750 provider:provider "$root/var/lib/provider"
if [ ! -f "$root/etc/provider/provider.yaml" ]; then
  install -m 0640 "$src_dir/config/provider.example.yaml" "$root/etc/provider/provider.yaml"
  [ -z "$root" ] && chown root:provider "$root/etc/provider/provider.yaml"
  note_change "wrote /etc/provider/provider.yaml from the example (edit it, then: provider config check)"
fi

say "-- systemd unit"
install_file 0644 "$src_dir/provisioners/systemd/provider.service" "$root/etc/systemd/system/provider.service"
if [ -z "$root" ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
fi

if [ "$gvisor" -eq 1 ]; then
  say "-- gVisor (runsc)"
  register=("$src_dir/provisioners/gvisor/register-runsc.sh")
  # Into a directory: its daemon.json, and no package or engine of this host touched.
  [ -n "$root" ] && register+=(--daemon-json "$root/etc/docker/daemon.json" --no-install --no-reload)
  registered=$(bash "${register[@]}")
  printf '%s\n' "$registered" | sed 's/^/  /'
  case "$registered" in *"already registered"*) ;; *) changed=1 ;; esac
fi

if [ -z "$root" ]; then
  say "-- host checks"
  if ! command -v docker >/dev/null 2>&1; then
    say "  WARN Docker is not installed: apt-get install docker.io (or Docker's own packages), then systemctl enable --now docker"
  elif ! docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
    say "  WARN the Docker engine does not answer: systemctl enable --now docker"
  else
    say "  ok   Docker $(docker version --format '{{.Server.Version}}')"
    if docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '"runsc"'; then
      say "  ok   gVisor: Docker has runsc; leases without GPUs run under it"
    else
      say "  WARN no gVisor: leases run under runc alone. Install it with: sudo $0 --with-gvisor"
    fi
  fi
  if command -v nvidia-smi >/dev/null 2>&1; then
    if command -v nvidia-ctk >/dev/null 2>&1; then
      say "  ok   NVIDIA container toolkit $(nvidia-ctk --version 2>/dev/null | head -n1)"
    else
      say "  WARN NVIDIA GPUs found but no NVIDIA container toolkit: GPUs will not be offered."
      say "       Set it up with: sudo $app_dir/provisioners/nvidia/setup-container-toolkit.sh"
    fi
  fi
fi

if [ "$changed" -eq 0 ]; then say "== nothing changed: already installed"; else say "== installed"; fi
cat <<EOF

Next:
  sudoedit /etc/provider/provider.yaml        # network, prices, GPUs to offer
  sudo -u provider provider config check      # validate it
  sudo -u provider provider capacity          # what this host can offer, and why not the rest
  sudo systemctl enable --now provider
  journalctl -u provider -f
EOF
