"""The live script tag under a Content-Security-Policy: which nonce it carries, or none."""

from __future__ import annotations

import pytest

from reload_middleware.live import csp

CSP = "Content-Security-Policy"


@pytest.mark.parametrize(("headers", "offered", "expected"), [
    ([], None, (True, None)),
    ([(CSP, "img-src 'self'")], None, (True, None)),
    ([(CSP, "script-src 'self'")], None, (True, None)),
    ([(CSP, "script-src 'nonce-abc123'")], None, (True, "abc123")),
    ([(CSP, "script-src 'self' 'nonce-abc123'")], None, (True, "abc123")),
    ([(CSP, "default-src 'nonce-abc123'; connect-src 'self'")], None, (True, "abc123")),
    ([(CSP, "default-src 'self'; script-src 'nonce-S'")], None, (True, "S")),
    ([(CSP, "default-src 'nonce-D'; script-src 'nonce-S'; connect-src 'self'")], None,
     (True, "S")),
    ([(CSP, "script-src 'self'; script-src 'nonce-late'")], None, (True, None)),
    ([(CSP, "script-src-elem 'nonce-E'; script-src 'self'")], None, (True, "E")),
    ([(CSP, "script-src 'nonce-a+b/c=='")], None, (True, "a+b/c==")),
    ([(CSP, "SCRIPT-SRC 'NONCE-Mixed' 'STRICT-DYNAMIC'")], None, (True, "Mixed")),
    ([(CSP, "script-src 'self' 'strict-dynamic'")], None, (False, None)),
    ([(CSP, "script-src 'strict-dynamic' 'nonce-n1'")], None, (True, "n1")),
    ([(CSP, "script-src 'none'")], None, (False, None)),
    ([(CSP, "script-src https://cdn.example")], None, (False, None)),
    ([(CSP, "script-src http:")], None, (True, None)),
    ([(CSP, "script-src *")], None, (True, None)),
    ([(CSP, "script-src 'nonce-n1'"), (CSP, "script-src 'nonce-n1' 'nonce-n2'")], None,
     (True, "n1")),
    ([(CSP, "script-src 'nonce-n1', script-src 'nonce-n2'")], None, (False, None)),
    ([(CSP, "script-src 'self'"), (CSP, "default-src 'nonce-n2'; connect-src *")], None,
     (True, "n2")),
    ([(CSP, "script-src 'none'"), (CSP, "script-src 'self'")], None, (False, None)),
    ([(f"{CSP}-Report-Only", "script-src 'none'")], None, (True, None)),
    ([(f"{CSP}-Report-Only", "script-src 'nonce-r'"), (CSP, "script-src 'self'")], None,
     (True, None)),
    ([(CSP, "script-src 'self'")], "fromapp", (True, "fromapp")),
    ([(CSP, "script-src 'strict-dynamic' 'nonce-fromapp'")], "fromapp", (True, "fromapp")),
    ([(CSP, "script-src 'nonce-other'")], "fromapp", (True, "other")),
    ([(CSP, "script-src 'strict-dynamic'")], "fromapp", (False, None)),
    ([], "fromapp", (True, "fromapp")),
    ([], 'x" onload="alert(1)', (True, None)),
    ([(CSP, "default-src 'nonce-n'")], None, (False, None)),
    ([(CSP, "script-src 'self'; connect-src 'none'")], None, (False, None)),
], ids=["no-policy", "no-script-directive", "self", "nonce-only", "self-and-nonce",
        "default-src-nonce", "script-src-over-default-src", "script-src-nonce-wins",
        "first-of-a-directive", "script-src-elem", "base64", "keywords-any-case",
        "strict-dynamic-ignores-self", "strict-dynamic-nonce", "none", "other-host",
        "scheme-source", "star", "two-headers-one-nonce", "two-policies-two-nonces",
        "self-and-a-nonce-policy", "one-policy-blocks", "report-only-ignored",
        "report-only-nonce-ignored", "offered-with-self", "offered-in-policy",
        "policy-nonce-first", "offered-not-in-policy", "offered-no-policy",
        "offered-not-a-nonce", "connect-falls-back-to-default", "connect-none"])  # fmt: skip
def test_verdict(
    headers: list[tuple[str, str]], offered: str | None, expected: tuple[bool, str | None]
) -> None:
    """The tag runs when every enforced policy's script directive (script-src-elem, else
    script-src, else default-src) allows 'self' or the nonce it carries, and its
    connect-src (else default-src) lets the events request through."""
    verdict = csp.verdict(headers, offered)
    assert (verdict.allowed, verdict.nonce) == expected
    assert bool(verdict.why) is not verdict.allowed


def test_why_names_the_directive() -> None:
    """The log line says which directive refused, never the nonce."""
    assert csp.verdict([(CSP, "default-src 'nonce-secret'")]).why == (
        "its default-src does not allow 'self' (the events request)")
    why = csp.verdict([(CSP, "script-src 'strict-dynamic'")], "secret").why
    assert why == "its script-src allows neither 'self' nor a nonce"


def test_https_scheme_source_needs_an_https_page() -> None:
    """`https:` allows the tag of an https page only."""
    headers = [(CSP, "script-src https:")]
    assert csp.verdict(headers, scheme="https").allowed
    assert not csp.verdict(headers, scheme="http").allowed
