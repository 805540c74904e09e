import shutil
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

# The demo flow's one source is the project's glueflow.yaml (defs/events/defs.yaml names it:
# `flow_file: ../../../glueflow.yaml`). A wheel leaves the project behind, so the build copies the file
# beside the installed instance; the component reads that copy only when the project has none
# (components/flow_source.py, packaged_flow_file).
DEMO_FLOW_FILE = "glueflow.yaml"
DEMO_FLOW_COPY = ("glueflow_dagster", "defs", "events", "glueflow.yaml")


class BuildPyWithDemoFlow(build_py):
    def run(self) -> None:
        super().run()
        source = Path(__file__).resolve().parent / DEMO_FLOW_FILE
        if not source.is_file():
            raise SystemExit(f"{source}: the demo flow file is missing (MANIFEST.in ships it in the sdist)")
        if not self.editable_mode:  # an editable install reads the project's file itself
            target = Path(self.build_lib, *DEMO_FLOW_COPY)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)


setup(
    name="glueflow_dagster",
    version="0.1.0",
    description="Chained, incremental S3 ETL jobs on Dagster, with Glue-style bookmarks and data-flow monitoring.",
    # The tests and the benchmarks run from the source tree; neither is installed with the package.
    packages=find_packages(
        exclude=["glueflow_dagster_tests", "glueflow_dagster_tests.*", "benchmarks", "benchmarks.*"]
    ),
    package_data={"glueflow_dagster": ["dagster.yaml", "dagster_postgres.yaml", "defs/*/defs.yaml"]},
    python_requires=">=3.11",
    install_requires=[
        "dagster>=1.13,<1.14",
        "dagster-aws>=0.29,<0.30",
        "dagster-webserver>=1.13,<1.14",
        "dagster-dg-cli>=1.13,<1.14",  # `dg check defs`, `dg list defs`, `dg scaffold defs`, `dg dev`
        "polars>=2.1,<3",
        "isal>=1.7",  # ISA-L's igzip: the default gzip levels 1-3 deflate several times faster than zlib
        "boto3>=1.34",
        "pyyaml>=6",
        "matplotlib>=3.8",  # the guide's charts: F/flow_report, glueflow report/simulate --png
        # `output.format: iceberg` (core/iceberg_table.py, core/iceberg_commit.py): pyiceberg's catalogs (SQL
        # on SQLite by default; Glue through boto3; REST) and its Arrow FileIO for local folders and S3.
        "pyiceberg[sql-sqlite,pyarrow]>=0.12,<0.13",
        "pyarrow>=16",
    ],
    extras_require={
        "dev": [
            "pytest>=8",
            "pytest-xdist>=3.5",  # the test command runs on two workers (see README, Tests)
            "moto[server]>=5",
            "ruff",
            "hypothesis>=6",
            "playwright>=1.40",  # drives Debian's chromium (installed by .ci/run), no browser download
            "duckdb>=1.0",  # the benchmark's reference engine
            "pyspark>=3.5,<3.6",  # the differential test's oracle (Glue 5.0 runs Spark 3.5); needs Java
            "dagster-postgres>=0.29,<0.30",  # the PostgreSQL instance tests (dagster_postgres.yaml)
        ]
    },
    cmdclass={"build_py": BuildPyWithDemoFlow},
    entry_points={
        "console_scripts": ["glueflow=glueflow_dagster.cli:main"],
        # dg's registry: makes the component type `glueflow_dagster.GlueFlows` known to `dg`.
        "dagster_dg_cli.registry_modules": ["glueflow_dagster = glueflow_dagster"],
    },
)
