"""Results into MLflow: the store, what is logged per run, and sync of MLflow to the result
files."""
