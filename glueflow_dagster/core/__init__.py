"""glueflow's functional core: the flow file's schema, the mapping, storage, the stage, quarantine,
bookmarks, commits, flow accounting, checks and the chart. Nothing here imports Dagster
(`glueflow_dagster_tests/core/test_core_boundary.py` keeps it so): every module is tested directly,
and the Dagster shell in `glueflow_dagster/components/` is a thin adapter over it."""
