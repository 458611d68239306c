#!/usr/bin/env bash
# How the files beside this script were made: by main at 3c7122b, before the package layout change (issue 21).
# They pin what that code wrote, so tests/test_pre_layout.py can check that today's code writes the same bytes
# and reuses what the old code left on disk (judge cache, resumable parts). Kept for the record; it only runs
# against that commit (it imports the old module paths).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
R="$PWD/.venv/bin/rationalerm"
export HF_HUB_OFFLINE=1
G=$(mktemp -d)
.venv/bin/python -c "from pathlib import Path; from tests.helpers.corpus import write_corpus; write_corpus(Path('$G/corpus5k.jsonl'), 5000)"
$R run examples/rationales.jsonl --config configs/default.yaml --out "$G/ex"
$R score "$G/ex" --out "$G/ex-rescored"
$R score "$G/ex" --compat metajudge --out "$G/ex-compat"
$R score "$G/ex" --max-model-items 3 --min-score 0.2 --out "$G/ex-cut"
(cd "$G" && $R run corpus5k.jsonl --config "$OLDPWD/configs/default.yaml" --out c5k)  # sources name the file as given
$R score "$G/c5k" --out "$G/c5k-rescored"
for d in ex ex-rescored ex-compat ex-cut; do mkdir -p "$here/$d"; cp "$G/$d/results.jsonl" "$G/$d/metrics.json" "$here/$d/"; done
cp "$G/ex/cache.sqlite" "$here/ex/cache.sqlite"
for d in c5k c5k-rescored; do
  mkdir -p "$here/$d"; cp "$G/$d/metrics.json" "$here/$d/"
  sha256sum "$G/$d/results.jsonl" | cut -c1-64 > "$here/$d/results.jsonl.sha256"
done
# Resumable parts: a 1,000-sample run at a fixed path and mtime, stopped before assembling (shards of 250);
# the last part is removed, as if the run had been killed while scoring it.
P=/tmp/rationalerm-pre-layout
rm -rf "$P"; mkdir -p "$P"; head -n 1000 "$G/corpus5k.jsonl" > "$P/corpus.jsonl"; touch -d '2026-12-01 00:00:00' "$P/corpus.jsonl"
.venv/bin/python - "$P" <<'PY'
import sys
from pathlib import Path
import rationalerm.shards as shards
from rationalerm import load_config
from rationalerm.pipeline import run
def stop(self): raise SystemExit("stopped before assembling, as a kill would")
shards.ResultParts.assemble = stop
p = Path(sys.argv[1])
try:
    run(p / "corpus.jsonl", load_config("configs/default.yaml", {"shard_size": 250}), p / "out")
except SystemExit:
    pass
PY
rm "$P/out/results.parts/000003.jsonl"
mkdir -p "$here/parts"; cp -r "$P/out/results.parts" "$here/parts/"
.venv/bin/python -c "
from pathlib import Path; from rationalerm import load_config; from rationalerm.pipeline import run
run(Path('$P/corpus.jsonl'), load_config('configs/default.yaml', {'shard_size': 250}), Path('$P/full'))"
cp "$P/full/metrics.json" "$here/parts/metrics.json"
sha256sum "$P/full/results.jsonl" | cut -c1-64 > "$here/parts/results.jsonl.sha256"
