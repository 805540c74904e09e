"""The PySpark side of glueflow: the stage script a Spark launcher runs (see ``stage_script.py``)."""
