"""Decomposition (DESIGN.md "Around the core"): free-text rationales -> ranked atomic checklist items, locally.

``prompt``: the versioned prompt, the answer schema and its strict parser; ``run``: records in, records out,
through the judge's LLM backend, cached and resumable.
"""

from __future__ import annotations

from rationalerm.decompose.prompt import ParsedAnswer, answer_regex, is_vague_verdict, parse_answer
from rationalerm.decompose.run import DecomposeOutcome, DecomposeSettings, decompose_file

__all__ = ["DecomposeOutcome", "DecomposeSettings", "ParsedAnswer", "answer_regex", "decompose_file",
           "is_vague_verdict", "parse_answer"]
