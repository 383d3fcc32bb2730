# A minimal project: no database, one app. DEBUG off, as on a server: Django's cached
# template loader is on either way, so template directories are watched.
DEBUG = False
SECRET_KEY = "example-only-not-secret"
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "mysite.urls"
INSTALLED_APPS = ["polls"]
DATABASES: dict[str, dict[str, str]] = {}
TEMPLATES = [
    {"BACKEND": "django.template.backends.django.DjangoTemplates", "DIRS": [], "APP_DIRS": True},
]
USE_TZ = True
GREETING = "hello"
# Pages in the browser's language: polls/locale holds a French catalog. A recompiled
# catalog (`django-admin compilemessages`) is served on the next request.
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("fr", "French")]
MIDDLEWARE = ["django.middleware.locale.LocaleMiddleware"]
