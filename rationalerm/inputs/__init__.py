"""Stages 1-2: records in (JSONL/Parquet -> Sample) and the (sample, model) grids the judge fills."""
