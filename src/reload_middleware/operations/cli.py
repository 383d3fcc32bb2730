"""`reload-middleware serve SCRIPT`: see it work with no server to set up.

    $ reload-middleware serve examples/app.wsgi --port 8000   # open pages reload themselves
    $ reload-middleware serve examples/app.wsgi --no-live
    $ reload-middleware doctor examples/app.wsgi
"""

from __future__ import annotations

import argparse
import importlib.machinery
import importlib.util
import json
import os
import socketserver
import sys
import types
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from ..digest import sha256_hex
from ..middleware import ReloadMiddleware
from ..script import Script
from . import doctor, machine_facts

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment


class _ThreadedServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write(f"{self.address_string()} - {format % args}\n")


def threaded(app: WSGIApplication) -> WSGIApplication:
    """`app` told the truth about this server: wsgiref says each request runs alone, but
    `_ThreadedServer` gives each its own thread (live reload's events wait only there)."""
    def serve(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        environ["wsgi.multithread"] = True
        return app(environ, start_response)

    return serve


def execute(path: str) -> types.ModuleType:
    """Execute a WSGI script file as a module of its own (its directory on sys.path)."""
    path = os.path.realpath(path)
    if not os.path.isfile(path):
        raise SystemExit(f"reload-middleware: no such script: {path}")
    name = "_reload_middleware_serve_" + sha256_hex(path.encode())[:12]
    loader = importlib.machinery.SourceFileLoader(name, path)
    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, os.path.dirname(path))
    sys.modules[name] = module
    loader.exec_module(module)
    return module


def load(path: str) -> ReloadMiddleware:
    """Execute a WSGI script file and return its `application`, wrapped unless it is."""
    module = execute(path)
    path, name = module.__file__ or path, module.__name__
    app = getattr(module, "application", None)
    if app is None:
        raise SystemExit(f"reload-middleware: {path} defines no 'application'")
    if isinstance(app, ReloadMiddleware):
        return app
    return ReloadMiddleware._for_script(app, Script(name, path), {"debug": True})


def parser() -> argparse.ArgumentParser:
    """The command line: `reload-middleware serve SCRIPT [...]`, `reload-middleware doctor`."""
    parser = argparse.ArgumentParser(prog="reload-middleware")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve a WSGI script with reloading and debug on")
    serve.add_argument("script", help="a file that defines `application`")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--watch", action="append", default=[], metavar="PATH",
                       help="another file or directory to watch (repeatable)")
    serve.add_argument("--static", action="append", default=[], metavar="DIR",
                       help="a directory of static files: a stylesheet saved there is "
                       "swapped in open pages (repeatable)")
    serve.add_argument("--no-live", dest="live", action="store_false",
                       help="do not reload open pages by themselves after a change")
    doctor = commands.add_parser(
        "doctor", help="tell why a change would or would not reload, without a server",
        description="Report the watchdog backend, inotify limits and use, what SCRIPT's "
        "import would make tracked, the action each server would take, and warnings "
        "with their fix. SCRIPT is executed with reloading off; nothing is served.",
        epilog="exit status: 0 when there is nothing to warn about, 1 when there are warnings")
    doctor.add_argument("script", nargs="?", metavar="SCRIPT",
                        help="a WSGI script file (omit: this machine only)")
    doctor.add_argument("--json", action="store_true", help="machine-readable output")
    doctor.add_argument("--python-path", action="append", default=[], metavar="DIRS",
                        help="directories the server adds to sys.path (python-path=), "
                        "':'-separated (repeatable)")
    doctor.add_argument("--apache-conf", metavar="FILE",
                        help="read the server's python-path= for SCRIPT from this Apache "
                        "configuration file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "doctor":
        python_path = [d for given in args.python_path for d in given.split(":") if d]
        if args.apache_conf and args.script:
            with open(args.apache_conf) as conf:
                python_path += doctor.apache_python_path(conf.read(), args.script)
        data = doctor.report(machine_facts.gather(args.script, execute, python_path))
        print(json.dumps(data, indent=2) if args.json else doctor.render(data))
        return 1 if data["warnings"] else 0
    os.environ.setdefault("RELOAD_MIDDLEWARE_DEBUG", "on")
    if args.live:
        os.environ.setdefault("RELOAD_MIDDLEWARE_LIVE", "on")
    else:
        os.environ["RELOAD_MIDDLEWARE_LIVE"] = "off"
    for name, given in (("WATCH", args.watch), ("STATIC", args.static)):
        if given:  # added to the variable's own list: the keyword and variable add up too
            key = f"RELOAD_MIDDLEWARE_{name}"
            os.environ[key] = os.pathsep.join(
                [*filter(None, [os.environ.get(key)]), *map(os.path.abspath, given)])
    app = load(args.script)
    with make_server(args.host, args.port, threaded(app), _ThreadedServer,
                     _QuietHandler) as server:
        print(f"reload-middleware: serving {args.script} on http://{args.host}:{server.server_port}/",
              flush=True)
        app.arm()  # this process serves: say what it watches now, not at the first request
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            print("reload-middleware: stopped", flush=True)
    return 0
