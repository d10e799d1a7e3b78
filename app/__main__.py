"""`python -m app`: the same entry point as the `sightline` console script."""

import os
import signal
import sys

# Ctrl+C or SIGTERM before app.cli has loaded: nothing has started, so end quietly with 130/143
# (app.cli installs the same guard for the console script, then main() takes over).
for _signum in (signal.SIGINT, signal.SIGTERM):
    signal.signal(_signum, lambda signum, _frame: (os.write(2, b"Stopped.\n"), os._exit(128 + signum)))

from app.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
