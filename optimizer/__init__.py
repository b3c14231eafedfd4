"""Pure models: arrays and DataFrames in, results out; no I/O, no UI, no database."""
