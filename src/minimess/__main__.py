"""`python -m minimess` runs the command line."""

from minimess.entrypoints.cli import main

# Guarded: `minimess bench` starts its workers with multiprocessing's spawn, which imports
# the main module again in every worker.
if __name__ == "__main__":
    main()
