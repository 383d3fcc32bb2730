# The example WSGI script: serve it with `make demo`, then edit demo/version.py.
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from demo import app  # noqa: E402

from reload_middleware import ReloadMiddleware  # noqa: E402

application = ReloadMiddleware(app, debug=True)
