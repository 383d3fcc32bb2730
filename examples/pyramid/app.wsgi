# The Pyramid example as a WSGI script, for mod_wsgi or `reload-middleware serve`:
# PasteDeploy builds the pipeline of development.ini, the middleware in front.
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)

from paste.deploy import loadapp  # noqa: E402

application = loadapp("config:development.ini", relative_to=here)
