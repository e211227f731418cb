#!/usr/bin/env bash
# Makes sure a Docker engine answers on /var/run/docker.sock: installs Debian's docker.io when it
# is missing and starts dockerd in the background when nothing answers, with gVisor (runsc)
# installed and registered. Idempotent.
set -euo pipefail

engine_answers() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

# gVisor (runsc), registered the one way install.sh --with-gvisor does it: the lease suites run
# under runc and runsc both. Without it they still run under runc and say why runsc was skipped.
register_gvisor() {
  bash "$(dirname "$0")/../provisioners/gvisor/register-runsc.sh" \
    || echo "docker: WARN gVisor (runsc) is not registered: the runsc lease tests will be skipped" >&2
}

if engine_answers; then
  echo "docker: engine already answering ($(docker version --format '{{.Server.Version}}'))"
  register_gvisor
  exit 0
fi

need_pkgs=()
command -v dockerd >/dev/null 2>&1 || need_pkgs+=(docker.io)
command -v iptables >/dev/null 2>&1 || need_pkgs+=(iptables)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "docker: installing ${need_pkgs[*]} from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

# Into daemon.json before dockerd starts: it reads its runtimes there.
register_gvisor

log=/var/log/provider-ci-dockerd.log
echo "docker: starting dockerd (log: $log)"
# setsid: the engine must outlive the shell that started it (CI steps, test runs).
# --live-restore: containers keep running while dockerd restarts, as on a production host; the
# runtime's engine-restart test relies on it (and restarts dockerd through this script).
setsid dockerd --live-restore >>"$log" 2>&1 < /dev/null &

for _ in $(seq 1 60); do
  if [ -S /var/run/docker.sock ] && engine_answers; then
    echo "docker: engine up ($(docker version --format '{{.Server.Version}}'))"
    exit 0
  fi
  sleep 1
done
echo "docker: engine did not answer within 60s; last lines of $log:" >&2
tail -n 30 "$log" >&2 || true
exit 1
