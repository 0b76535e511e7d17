"""`python -m crossdock.cli` runs the CLI (used by tests and when the script is not on PATH)."""

from crossdock.cli.main import app

app()
