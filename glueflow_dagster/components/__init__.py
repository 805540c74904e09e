"""The Dagster shell, in Dagster's own layout: the component type `glueflow_dagster.GlueFlows`
(glue_flows.py) and what it builds per flow (assets, jobs, schedules, sensors, checks' results,
resources), plus the readers of the instance's event log, which is glueflow's commit log
(commit_log.py, bookmark_store.py, monitoring.py). Every decision is the core's
(`glueflow_dagster/core/`); these modules adapt it to Dagster."""
