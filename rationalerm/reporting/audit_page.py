"""The annotation page of an audit (``audit.html``): one self-contained file that opens from disk.

Rendered by Jinja2 (``templates/audit.html.j2``, autoescaped); the units travel as JSON in a
``<script type="application/json">`` block, escaped by the report's ``_json_for_script``. The page renders one
unit at a time, so it stays fast with hundreds of units, keeps the work in the browser's localStorage (under
a key that names this audit's units, so two audits never mix) and exports ``labels.jsonl`` in the format
``compare --gold`` reads, with explicit 0s on every other cell of each finished unit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from rationalerm._util.files import atomic_write_bytes
from rationalerm._util.hashing import stable_hash
from rationalerm._version import __version__
from rationalerm.analysis.audit import AuditUnit
from rationalerm.reporting.html import _json_for_script


def render_audit(units: Sequence[AuditUnit], title: str) -> str:
    """The page's HTML."""
    env = Environment(loader=PackageLoader("rationalerm.reporting", "templates"),
                      autoescape=select_autoescape(["j2", "html"]), trim_blocks=True, lstrip_blocks=True)
    payload = [asdict(u) for u in units]
    key = "rationalerm-audit:" + stable_hash([(u.id, u.model, u.human, u.items) for u in units])
    data = {"units": payload, "storage_key": key}
    return env.get_template("audit.html.j2").render(title=title, version=__version__,
                                                    data_json=_json_for_script(data))


def write_audit_page(units: Sequence[AuditUnit], out: Path, title: str = "rationalerm audit") -> Path:
    """``out`` (the page), written atomically."""
    atomic_write_bytes(out, render_audit(units, title).encode("utf-8"))
    return out
