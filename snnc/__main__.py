"""`python -m snnc` runs the command line."""

import sys

from snnc.cli import main

sys.exit(main())
