#!/usr/bin/env bash
# mypy over the installed layout: the four folders are checked as pixelpilot.agent, .tools, .drivers and
# .tasks (mypy cannot follow setuptools' editable-install mapping, so it reads a tree of links to them).
set -euo pipefail
cd "$(dirname "$0")/.."
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
mkdir "$tree/pixelpilot"
cp pixelpilot/__init__.py pixelpilot/py.typed "$tree/pixelpilot/"
for p in agent tools drivers tasks; do ln -s "$PWD/$p" "$tree/pixelpilot/$p"; done
cd "$tree"
"${PYTHON:-$OLDPWD/.venv/bin/python}" -m mypy -p pixelpilot --config-file "$OLDPWD/pyproject.toml"
