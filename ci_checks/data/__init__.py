"""Data checks: expectations of datasets (data-check), their statistics and drift against the base (data-stats).

Heavy dependencies (pandas, pandera, pyarrow, polars, dvc) are imported inside the functions that need them, so
importing the commands costs nothing until they run.
"""
