# The code location's image for Dagster+ Hybrid (`dg plus deploy --agent-type hybrid` builds it from
# build.yaml's `directory`). Installed editable so the package runs from /app beside pyproject.toml,
# the dg project root its defs folder and local paths resolve against.
FROM python:3.11-slim-bookworm
WORKDIR /app
COPY . /app
RUN pip install --no-cache-dir -e . "dagster-cloud>=1.13,<1.14"
