"""Stage 8: agreement of a run with another run or with gold labels; calibration."""
