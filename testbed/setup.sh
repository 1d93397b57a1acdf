#!/usr/bin/env bash
# Prepares a fresh Debian machine for the test bed: installs the Debian packages it
# runs when missing (redis-server and PostgreSQL; for the real node runc, iptables,
# conntrack, iproute2 and openssl; buildah for its images), then builds the Go
# programs (testbed/build.sh; cached, so a warm run takes seconds).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || missing+=(postgresql)
command -v setpriv >/dev/null || missing+=(util-linux)
# The real node and its images.
for program in runc:runc buildah:buildah iptables:iptables conntrack:conntrack ip:iproute2 openssl:openssl; do
  command -v "${program%%:*}" >/dev/null || missing+=("${program#*:}")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "[testbed/setup] installing Debian packages: ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # The packages start system-wide servers; the test bed runs its own on free ports.
    for service in redis-server postgresql; do
      if command -v service >/dev/null; then service "$service" stop >/dev/null 2>&1 || true; fi
    done
  else
    echo "[testbed/setup] missing Debian packages: ${missing[*]}" >&2
    echo "[testbed/setup] install them with: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

bash "$here/build.sh"
bash "$here/python.sh"
