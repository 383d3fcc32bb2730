"""`python -m reload_middleware serve SCRIPT`."""

import sys

from .cli import main

sys.exit(main())
