#!/usr/bin/env bash
# Creates (or refreshes) the Python venv of the interop tests and prints the path of its python.
# The venv lives in integration-tests/.venv (override with TANOA_INTEROP_VENV) and is rebuilt
# only when requirements.txt changes. Needs python3 (3.11) with the venv module and PyPI.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${TANOA_INTEROP_VENV:-$here/../.venv}"
req="$here/requirements.txt"
stamp="$venv/.tanoa-requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "$venv/bin/python"
  exit 0
fi
echo "setup-venv: installing the interop tools into $venv (PyPI)" >&2
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-input -r "$req" >&2
echo "$want" > "$stamp"
echo "$venv/bin/python"
