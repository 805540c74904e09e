"""The project's component instances (dg's defs folder): one folder per instance, `defs.yaml` in it."""
