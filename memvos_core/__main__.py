import sys

from .command.cli import main

if __name__ == "__main__":  # spawned batch workers import this module again: they must not run main
    sys.exit(main())
