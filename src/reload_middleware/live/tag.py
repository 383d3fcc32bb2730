"""The live script tag: a URL of the page's own origin whatever the request said, and the
nonce the page's policy asks for. Pure functions.

The URL is root-relative below the mount (`/app/__reload_middleware__/live.js`) when the
server set that mount itself and it is a plain absolute path once percent-encoded: one
leading `/`, no empty, `.` or `..` segment. Anything else (a mount a `SCRIPT_NAME`
request header chose, `//evil.example`, `/\\evil`) gives a document-relative URL
(`./__reload_middleware__/live.js`, `../__reload_middleware__/live.js`) that climbs
from the page's path back to the mount: never a `//` or a scheme, so never another
origin, and right wherever PATH_INFO spells the rest of the page's URL.

>>> script_base("/app", "/app", "/page")
'/app/__reload_middleware__/'
>>> script_base(None, "//evil.example", "/a/page")
'../__reload_middleware__/'
>>> script_tag("/__reload_middleware__/", 7, "r4nd0m")
b'<script src="/__reload_middleware__/live.js?v=7" nonce="r4nd0m"></script>'
"""

from __future__ import annotations

from urllib.parse import quote

PREFIX = "/__reload_middleware__/"  # the reserved path, below the mount
# The environ key through which a framework hands over the nonce of its own policy.
NONCE_KEY = "reload_middleware.csp_nonce"
# Path characters kept as they are (RFC 3986 pchar), except `&` and `'`, which mean
# something in an HTML attribute; everything else is percent-encoded.
_PATH_SAFE = "/!$()*+,;=:@~"


def url_path(text: str) -> str:
    """A WSGI path (the request's bytes decoded as latin-1) percent-encoded for a URL.

    >>> url_path("/my app/\\\\x")
    '/my%20app/%5Cx'
    """
    try:
        raw = text.encode("latin-1")
    except UnicodeEncodeError:  # a server that passed real Unicode
        raw = text.encode("utf-8")
    return quote(raw, safe=_PATH_SAFE)


def plain_mount(mount: str) -> str | None:
    """The mount as a root-relative URL path ('' at the root), or None when it is not a
    plain absolute path: it must start with one `/` and have no empty, `.` or `..`
    segment, so that the browser can read it only as a path on the page's own origin.

    >>> plain_mount("/app/"), plain_mount(""), plain_mount("//evil.example"), plain_mount("/a/..")
    ('/app', '', None, None)
    """
    path = url_path(mount.rstrip("/"))
    if not path:
        return ""
    first, *segments = path.split("/")
    if first or any(s in ("", ".", "..") for s in segments):
        return None
    return path


def relative_base(script_name: str, path_info: str) -> str:
    """The reserved directory relative to the page at SCRIPT_NAME + PATH_INFO: as many
    `../` as PATH_INFO has directories. At the mount itself with no slash after it
    (PATH_INFO ''), through the mount's last segment.

    >>> relative_base("/x", "/"), relative_base("/x", "/a/b/"), relative_base("/m y", "")
    ('./__reload_middleware__/', '../../__reload_middleware__/', './m%20y/__reload_middleware__/')
    """
    reserved = PREFIX.lstrip("/")
    depth = path_info.count("/")
    if depth:
        return ("../" * (depth - 1) or "./") + reserved
    last = script_name.rpartition("/")[2]
    if not last:
        return "./" + reserved
    return f"./{url_path(last)}/{reserved}"  # after `./`, a `:` names no scheme


def script_base(mount: str | None, script_name: str, path_info: str) -> str:
    """Where the live script and its events are, for a page at SCRIPT_NAME + PATH_INFO.

    `mount` is the SCRIPT_NAME the server set itself, or None when a request header may
    have chosen it (`servers.server_mount`): then, or when it is not plain, the URL is
    relative to the page.
    """
    plain = None if mount is None else plain_mount(mount)
    if plain is None:
        return relative_base(script_name, path_info)
    return plain + PREFIX


def script_tag(base: str, version: int, nonce: str | None) -> bytes:
    """The tag itself; `base` and `nonce` hold no quote, `<` or `&` (encoded or checked
    before), and are escaped all the same."""
    attributes = f' nonce="{_escape(nonce)}"' if nonce else ""
    return f'<script src="{_escape(base)}live.js?v={version}"{attributes}></script>'.encode()


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
