"""`python -m reload_middleware serve SCRIPT`."""

import sys

from .operations.cli import main

sys.exit(main())
