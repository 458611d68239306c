"""Stage 7: what a person reads -- terminal tables, the HTML page, plots, CSV/Parquet exports."""
