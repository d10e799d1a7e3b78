#!/usr/bin/env bash
# Set up (first time only) and start Sightline. Arguments go to the `sightline` command,
# e.g. scripts/run.sh describe --screen
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/sightline "$@"
