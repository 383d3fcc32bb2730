"""May the live script tag run under a response's Content-Security-Policy, and with which
nonce? Pure functions over the response's headers.

The tag is an external script of the page's own origin (`<script src="...live.js">`)
that asks its own origin for events. A policy lets it run when its script directive
(`script-src-elem`, else `script-src`, else `default-src`) allows `'self'` (or `*`, or
the page's scheme), or holds a nonce the tag then carries; `'strict-dynamic'` makes
only the nonce count. Its `connect-src` (else `default-src`) must allow the origin,
which a nonce cannot do. Every enforced policy must agree; `-Report-Only` ones block
nothing and are not read.

>>> headers = [("Content-Security-Policy", "default-src 'self'; script-src 'nonce-r4nd0m'")]
>>> verdict(headers)
Verdict(allowed=True, nonce='r4nd0m', why='')
>>> verdict([("Content-Security-Policy", "script-src 'none'")]).why
"its script-src allows neither 'self' nor a nonce"
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import NamedTuple

Policy = dict[str, list[str]]  # directive name -> its sources as written
# A nonce as CSP defines it: base64 or base64url. Nothing else goes into the attribute.
NONCE = re.compile(r"[A-Za-z0-9+/_-]+={0,2}")
_NONCE_SOURCE = re.compile(r"'(?i:nonce)-([A-Za-z0-9+/_-]+={0,2})'")  # keyword in any case
SCRIPT_DIRECTIVES = ("script-src-elem", "script-src", "default-src")
CONNECT_DIRECTIVES = ("connect-src", "default-src")


class Verdict(NamedTuple):
    """Whether the tag may go in, the nonce it must carry (None: none needed), and why
    not, for the log ('' when allowed)."""

    allowed: bool
    nonce: str | None
    why: str


def policies(headers: Iterable[tuple[str, str]]) -> list[Policy]:
    """The enforced policies of a response: each `Content-Security-Policy` header,
    split at commas (one header may carry several), each into its directives. A
    directive given twice in one policy counts the first time, as browsers do.

    >>> policies([("content-security-policy", "script-src 'self', img-src *")])
    [{'script-src': ["'self'"]}, {'img-src': ['*']}]
    """
    found: list[Policy] = []
    for name, value in headers:
        if name.lower() != "content-security-policy":
            continue
        for serialized in value.split(","):
            policy: Policy = {}
            for directive in serialized.split(";"):
                tokens = directive.split()
                if tokens:
                    policy.setdefault(tokens[0].lower(), tokens[1:])
            if policy:
                found.append(policy)
    return found


def sources(policy: Policy, directives: Sequence[str]) -> list[str] | None:
    """The sources of the first of `directives` the policy has (None: unrestricted)."""
    return next((policy[name] for name in directives if name in policy), None)


def nonces(source_list: Iterable[str]) -> list[str]:
    """The nonces a source list allows.

    >>> nonces(["'self'", "'nonce-abc+/='", "'NONCE-Xy'", "'nonce-a<b'"])
    ['abc+/=', 'Xy']
    """
    return [m.group(1) for s in source_list if (m := _NONCE_SOURCE.fullmatch(s))]


def own_origin(source_list: list[str], scheme: str) -> bool:
    """Whether a source list allows a URL of the page's own origin without a nonce."""
    keywords = {s.lower() for s in source_list}
    if "'strict-dynamic'" in keywords:  # then only nonces and hashes count for scripts
        return False
    return bool(keywords & {"'self'", "*", f"{scheme}:"})


def script_allowed(policy: Policy, nonce: str | None, scheme: str) -> bool:
    """Whether `policy` runs an external script of the page's origin carrying `nonce`."""
    source_list = sources(policy, SCRIPT_DIRECTIVES)
    if source_list is None:
        return True
    return own_origin(source_list, scheme) or (nonce is not None and nonce in nonces(source_list))


def connect_allowed(policy: Policy, scheme: str) -> bool:
    """Whether `policy` lets a script fetch from the page's origin (the events request)."""
    source_list = sources(policy, CONNECT_DIRECTIVES)
    keywords = {s.lower() for s in source_list or ()}
    return source_list is None or bool(keywords & {"'self'", "*", f"{scheme}:"})


def verdict(
    headers: Iterable[tuple[str, str]], offered: str | None = None, scheme: str = "http"
) -> Verdict:
    """May the tag go into a response with `headers`, and with which nonce?

    A nonce is taken from the policies first, then `offered` (the one a framework
    handed over: the policy may be added where this middleware does not see it); the
    tag carries one whenever there is one that every policy accepts, so it also passes
    a stricter policy added later on the way out.

    >>> verdict([("Content-Security-Policy", "script-src 'self'")], offered="abc")
    Verdict(allowed=True, nonce='abc', why='')
    """
    enforced = policies(headers)
    for policy in enforced:
        if not connect_allowed(policy, scheme):
            name = sources_name(policy, CONNECT_DIRECTIVES)
            return Verdict(False, None, f"its {name} does not allow 'self' (the events request)")
    offers = [n for p in enforced for n in nonces(sources(p, SCRIPT_DIRECTIVES) or ())]
    if offered is not None and NONCE.fullmatch(offered):
        offers.append(offered)
    for nonce in [*dict.fromkeys(offers), None]:
        if all(script_allowed(policy, nonce, scheme) for policy in enforced):
            return Verdict(True, nonce, "")
    blocker = next(p for p in enforced if not script_allowed(p, None, scheme))
    name = sources_name(blocker, SCRIPT_DIRECTIVES)
    return Verdict(False, None, f"its {name} allows neither 'self' nor a nonce")


def sources_name(policy: Policy, directives: Sequence[str]) -> str:
    """The name of the first of `directives` the policy has, for the log."""
    return next((name for name in directives if name in policy), directives[-1])
