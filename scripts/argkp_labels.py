#!/usr/bin/env python
"""Write ArgKP pair labels as ``rationalerm train`` / ``compare --gold`` JSONL:
{"human": key point, "item": argument, "label"}.

    python scripts/argkp_labels.py --split train --out runs/argkp-train.jsonl
    rationalerm train runs/argkp-train.jsonl --out runs/ce-argkp
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script from a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rationalerm._util.files import write_jsonl  # noqa: E402
from rationalerm.datasets.argkp import label_records, load_argkp  # noqa: E402
from tests.helpers.data import default_argkp_path  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", choices=["train", "dev", "all"], default="train")
    ap.add_argument("--data", default=None, help="ArgKP folder (default $RATIONALERM_ARGKP or ../shared/data/argkp)")
    ap.add_argument("--undecided", type=float, default=None, metavar="LABEL",
                    help="also write the unlabelled (undecided) pairs of each topic-stance group with this label")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    rows = label_records(load_argkp(args.split, args.data or default_argkp_path()), args.undecided)
    write_jsonl(args.out, rows)
    print(f"wrote {len(rows)} labelled pairs to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
