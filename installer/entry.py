"""The frozen Sightline program: the same entry point as the `sightline` console script."""

import multiprocessing
import sys

if __name__ == "__main__":
    # A frozen program that starts helper processes must let them run as helpers, not as the app.
    multiprocessing.freeze_support()
    from app.cli import main

    sys.exit(main())
