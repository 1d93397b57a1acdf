#!/usr/bin/env bash
# Makes the virtual environment the API fuzzing runs schemathesis from (PyPI, the
# version in testbed/versions.env), in the test bed's cache outside the checkout:
#   $TASKAPI_TESTBED_CACHE/venv/schemathesis-<version>/
# A finished install leaves a `.complete` stamp and is reused as is.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
cache=${TASKAPI_TESTBED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/taskapi-testbed}
out="$cache/venv/schemathesis-$SCHEMATHESIS_VERSION"
log() { printf '[testbed/python] %s\n' "$*" >&2; }

if [[ -f "$out/.complete" && -x "$out/bin/schemathesis" ]]; then
  log "schemathesis $SCHEMATHESIS_VERSION: cached in $out"
  exit 0
fi
command -v python3 >/dev/null || { echo "testbed/python.sh: python3 is missing; install Python >= 3.10" >&2; exit 1; }
# Debian splits venv's pip bootstrap into its own package.
if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    log "installing python3-venv"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
  else
    echo "testbed/python.sh: python3 cannot make virtual environments; install them with: sudo apt-get install -y python3-venv" >&2
    exit 1
  fi
fi
# A venv's scripts name its own path, so it is made in place; the stamp comes last,
# so an interrupted install is never taken for a finished one.
rm -rf "$out" && mkdir -p "$(dirname "$out")"
log "schemathesis $SCHEMATHESIS_VERSION: installing from PyPI"
python3 -m venv "$out"
"$out/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
touch "$out/.complete"
