# A Django project behind the middleware: `reload-middleware serve examples/django/app.wsgi`,
# then edit polls/views.py, polls/templates/polls/index.html or mysite/settings.py.
# In your own project the line that matters goes into mysite/wsgi.py (docs/frameworks.md, "Django").
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # mod_wsgi: python-path=
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")

from django.core.wsgi import get_wsgi_application  # noqa: E402

from reload_middleware import ReloadMiddleware  # noqa: E402

application = ReloadMiddleware(get_wsgi_application())
