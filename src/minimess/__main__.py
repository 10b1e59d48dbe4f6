"""`python -m minimess` runs the command line."""

from minimess.app.cli import main

main()
