#!/usr/bin/env bash
# Builds .venv-webapps: third-party web applications the browser tests start as a user would, each in
# the environment its own release expects. Trac 1.6 (PyPI) still imports pkg_resources, which the
# setuptools of a fresh venv on Python >= 3.12 no longer ships: it gets one that does.
set -euo pipefail
cd "$(dirname "$0")/.."
V=.venv-webapps
PY=${PYTHON:-python3}
if [ -x "$V/bin/tracd" ] && "$V/bin/python" -c "import trac, pkg_resources" 2>/dev/null; then
  echo "web apps venv ready: $V"; exit 0
fi
"$PY" -m venv "$V"
"$V/bin/python" -m pip install -q --upgrade pip >/dev/null
"$V/bin/python" -m pip install -q "trac==1.6" "setuptools<81"
echo "web apps venv ready: $V (Trac $("$V/bin/python" -c 'import trac; print(trac.__version__)'))"
