"""Run directories on disk: the parts a streamed run writes, the one run reader, re-scoring, imports."""
