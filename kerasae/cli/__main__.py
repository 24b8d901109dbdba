"""`python -m kerasae.cli`: the `kerasae` command."""

import sys

from kerasae.cli import main

sys.exit(main())
