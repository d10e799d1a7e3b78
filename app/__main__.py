"""`python -m app`: the same entry point as the `sightline` console script."""

import _signal  # the C module, loaded with the interpreter; signal.py would build enums first
import os
import sys


def _stop(signum, _frame):
    """Ctrl+C or SIGTERM before app.cli has loaded: nothing has started, so end quietly.

    app.cli installs the same guard for the console script, then main() takes over.
    """
    os.write(2, b"Stopped.\n")
    os._exit(128 + signum)


_signal.signal(_signal.SIGINT, _stop)
_signal.signal(_signal.SIGTERM, _stop)

from app.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
