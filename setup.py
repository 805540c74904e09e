from setuptools import find_packages, setup

setup(
    name="glueflow_dagster",
    version="0.1.0",
    description="Chained, incremental S3 ETL jobs on Dagster, with Glue-style bookmarks and data-flow monitoring.",
    packages=find_packages(exclude=["glueflow_dagster_tests", "glueflow_dagster_tests.*"]),
    package_data={"glueflow_dagster": ["dagster.yaml"]},
    python_requires=">=3.11",
    install_requires=[
        "dagster>=1.13,<1.14",
        "dagster-aws>=0.29,<0.30",
        "dagster-webserver>=1.13,<1.14",
        "polars>=2.1,<3",
        "boto3>=1.34",
        "pyyaml>=6",
    ],
    extras_require={
        "dev": [
            "pytest>=8",
            "moto[server]>=5",
            "ruff",
        ]
    },
    entry_points={"console_scripts": ["glueflow=glueflow_dagster.cli:main"]},
)
