#!/usr/bin/env bash
# Set up everything the suite needs (vLLM CPU build included) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev,vllm
# The HTML report tests drive a real headless browser: Debian's chromium (never a browser download).
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q chromium
fi
export RATIONALERM_REQUIRE_BROWSER=1  # the browser tests fail, not skip, if chromium is missing here
export HF_HUB_OFFLINE=1 VLLM_CPU_KVCACHE_SPACE="${VLLM_CPU_KVCACHE_SPACE:-1}" VLLM_ENABLE_V1_MULTIPROCESSING=0
# Lint and type-check first (config in pyproject.toml): a change that breaks either fails the suite.
.venv/bin/ruff check .
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"
