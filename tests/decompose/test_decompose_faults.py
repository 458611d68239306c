"""``rationalerm decompose`` on the real openai backend against the fault-injecting server: requests that get
no answer are failed (never cached, exit 3, retried by the rerun); answers that are not the schema (this backend
has no grammar here) are rejected by the strict parser, counted, and leave no checklist."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytest.importorskip("openai")

from rationalerm.cli import app  # noqa: E402
from rationalerm.decompose.run import ERRORS_KEY  # noqa: E402
from tests.helpers.fault_server import FaultServer  # noqa: E402
from tests.helpers.faults import write_config  # noqa: E402

RECORDS = [
    {"id": "a", "human-checklist": ["Response 1 keeps the order."], "m1-generated_text": "Response 1 keeps order.",
     "m2-generated_text": "Response 2 drops the order by using set()."},
    {"id": "b", "human-checklist": ["Response 2 is shorter."], "m1-generated_text": "Response 2 is shorter."},
]


def test_failed_requests_exit_3_and_are_retried_then_unparseable_answers_are_counted(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    server = FaultServer(permanent=1.0, permanent_kind="500")
    try:
        cfg = write_config(tmp_path / "cfg.yaml", server.base_url, timeout_s=2.0, max_retries=1)
        out = tmp_path / "out.jsonl"
        args = ["decompose", str(src), "--config", str(cfg), "--out", str(out), "--retries", "0"]

        first = CliRunner().invoke(app, args)
        assert first.exit_code == 3, first.output
        assert "3 rationales got no answer; run the same command again" in first.output.replace("\n", " ")
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        assert all("Error code: 500" in reason and "(2 attempts)" in reason
                   for r in rows for reason in r[ERRORS_KEY].values())
        assert "3 x server error" in first.output.replace("\n", " ")
        assert not any(k.endswith("-checklist") and k != "human-checklist" for r in rows for k in r)
        asked = len(server.asked)
        assert asked == 3 * 2  # 3 distinct texts, each tried twice by the backend

        server.permanent = 0.0  # the server recovers; its answers are not the decomposition schema
        second = CliRunner().invoke(app, args)
        assert second.exit_code == 0, second.output
        text = second.output.replace("\n", " ")
        assert "decomposed 0 of 3 rationales" in text and "(3 asked, 0 from cache)" in text  # failures were not cached
        assert "3 without a checklist" in text
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        assert all(reason.startswith("not one JSON object") for r in rows for reason in r[ERRORS_KEY].values())

        third = CliRunner().invoke(app, args)  # rejected answers are cached: nothing is asked again
        assert third.exit_code == 0 and "(0 asked, 3 from cache)" in third.output.replace("\n", " ")
    finally:
        server.close()
