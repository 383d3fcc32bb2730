# A Flask app behind the middleware: `reload-middleware serve examples/flask/app.wsgi`,
# then edit hello/pages/views.py, a template under hello/ or hello/config.py.
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # mod_wsgi: python-path=

from hello import create_app  # noqa: E402

from reload_middleware import ReloadMiddleware  # noqa: E402

application = ReloadMiddleware(create_app())
