"""A Pyramid application as PasteDeploy builds it: `use = call:hello:main`."""

from pyramid.config import Configurator


def main(global_config, **settings):
    with Configurator(settings=settings) as config:
        config.add_route("home", "/")
        config.scan(".views")
        return config.make_wsgi_app()
