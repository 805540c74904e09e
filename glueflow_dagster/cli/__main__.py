"""`python -m glueflow_dagster.cli`: the same as the `glueflow` command."""

import sys

from glueflow_dagster.cli.main import main

sys.exit(main())
