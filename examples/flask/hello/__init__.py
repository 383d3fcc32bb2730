from flask import Flask


def create_app() -> Flask:
    # Debug off, as on a server: Flask then caches templates, so their folders (the
    # app's and each blueprint's) are watched.
    app = Flask(__name__)
    app.config.from_object("hello.config")
    from hello.pages.views import pages

    app.register_blueprint(pages)
    return app
