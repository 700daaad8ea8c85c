"""`python -m tunegate` runs the CLI, the same as the `tunegate` command."""

from tunegate.cli import main

main()
