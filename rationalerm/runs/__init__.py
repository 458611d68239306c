"""Run directories on disk: the one run reader and writer (directory), the parts a streamed run writes (parts),
re-scoring (rescore), gold pair labels (gold), imports of the reference pipeline's answers (import_metajudge)."""
