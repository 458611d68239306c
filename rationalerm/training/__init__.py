"""Stage 9: fit a cross-encoder matcher on human labels or on a judge's run."""
