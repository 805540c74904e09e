"""Benchmarks that print glueflow's figures side by side with a reference (run as `python -m benchmarks.X`)."""
