#!/usr/bin/env bash
# Refresh requirements.lock: the exact versions of everything `pip install -e ".[dev]"` brings today, installed
# into a throwaway virtual environment. .ci/run installs from the lock, so CI tests what was locked.
#   bash scripts/lock.sh        (a few minutes: torch and its CUDA libraries are large)
set -euo pipefail
cd "$(dirname "$0")/.."
venv="$(mktemp -d)"
trap 'rm -rf "$venv"' EXIT
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
PIP_NO_CACHE_DIR=1 "$venv/bin/python" -m pip install --quiet -e ".[dev]"
{
  echo "# Tested versions of mnistlab's dependencies (with the dev extra). Refresh: bash scripts/lock.sh"
  echo "# Install: python -m pip install -r requirements.lock && python -m pip install --no-deps -e \".[dev]\""
  "$venv/bin/python" -m pip freeze --exclude-editable | grep -v '^mnistlab'
} > requirements.lock
if grep -Eq '^lightning==2\.6\.[23]$' requirements.lock; then
  echo "requirements.lock pins a compromised lightning build (GHSA-w37p-236h-pfx3)" >&2
  exit 1
fi
echo "requirements.lock: $(grep -cv '^#' requirements.lock) packages"
