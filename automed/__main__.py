"""``python -m automed``: the command line, as the ``automed`` script runs it."""

from automed.cli import main

if __name__ == "__main__":
    main()
