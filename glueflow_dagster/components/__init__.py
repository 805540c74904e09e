"""The Dagster component types of glueflow (`glueflow_dagster.GlueFlows`)."""
