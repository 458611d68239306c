"""``DecomposeSettings`` is a config section: the same fields and defaults as before, bad values rejected when it
is built (a CLI option is one ``error:`` line, exit 2), and the same cache key as before for the same settings."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from rationalerm.cli import app
from rationalerm.decompose import DecomposeSettings
from rationalerm.decompose.run import fingerprint
from rationalerm.judges.cache import fingerprint_id
from rationalerm.judges.llm import LLMJudgeConfig
from rationalerm.registry import ConfigSection


def test_fields_and_defaults_are_the_old_ones() -> None:
    s = DecomposeSettings()
    assert isinstance(s, ConfigSection)
    assert s.model_dump() == {"max_items": 5, "max_item_chars": 300, "max_tokens": 1024, "max_retries": 2,
                              "retry_temperature": 0.7, "structured": True, "prompt_version": "v1"}


@pytest.mark.parametrize("bad", [{"max_items": 0}, {"max_item_chars": 0}, {"max_tokens": 0}, {"max_retries": -1},
                                 {"retry_temperature": -0.1}, {"max_item": 3}])
def test_bad_values_and_unknown_keys_are_rejected_when_built(bad: dict) -> None:
    with pytest.raises(ValidationError):
        DecomposeSettings(**bad)
    with pytest.raises(ValidationError):  # and when changed afterwards
        DecomposeSettings().max_items = 0


def test_the_cache_key_is_the_one_written_before() -> None:
    """Recorded from the code before the settings became a config section: old caches stay valid."""
    judge = LLMJudgeConfig(model="Qwen/Qwen3-8B", backend="vllm")
    assert fingerprint_id(fingerprint(judge, DecomposeSettings(), True)) == (
        "0e7bd6dbf6357daaf52d4bd46bf72a1552e794f976a84435b556ca1a2cc25cfa")
    small = DecomposeSettings(max_items=3, max_item_chars=60, max_tokens=400, max_retries=1, structured=False)
    assert fingerprint_id(fingerprint(judge, small, False)) == (
        "01980c95109f4a8e148e010f499c5ede0155eed00160c9f0f75b4cb2bc193fb0")


def test_a_bad_option_is_one_error_line_before_any_engine_starts(tmp_path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("judge: {type: llm, model: Qwen/Qwen3-8B, backend: vllm}\n")
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"id": "a", "m-generated_text": "Response 1 keeps the order."}) + "\n")
    out = tmp_path / "out.jsonl"
    res = CliRunner().invoke(app, ["decompose", str(src), "--config", str(cfg), "--out", str(out), "--max-items", "0"])
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    text = " ".join(res.output.split())
    assert "error: rationalerm decompose options: invalid config" in text
    assert "max_items: Input should be greater than or equal to 1" in text and not out.exists()
