"""Options: text forms, keyword validation and the environ/OS/keyword overlay."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from reload_middleware import config
from reload_middleware.config import PARSERS, Settings, environ_key, from_keywords, os_key, overlay

SECRET = "s3cret-token-0123"  # 17 characters
SHORT_SECRET = "fifteen-chars-x"  # 15 characters
assert len(SECRET) >= config.MIN_SECRET > len(SHORT_SECRET)

FLAGS = ("enabled", "debug", "live")
CHOICES = {
    "mode": ("auto", "restart", "reload"),
    "modules": ("project", "all", "off"),
    "preflight": ("auto", "compile", "import", "off"),
    "retry": ("auto", "always", "never"),
    "observer": ("auto", "native", "polling"),
    "templates": ("auto", "off"),
}
SECONDS = ("settle", "interval")
TEXTS = ("trigger", "control", "secret")
LISTS = ("watch", "exclude", "static")


def configure(
    keywords: Mapping[str, object],
    os_environ: Mapping[str, str],
    wsgi_environ: Mapping[str, Any],
) -> tuple[Settings, list[str]]:
    """Settings the way a middleware builds them: keywords, then OS variables, then environ."""
    reports: list[str] = []
    settings = from_keywords(keywords)
    settings = overlay(settings, os_environ, os_key, reports.append)
    settings = overlay(settings, wsgi_environ, environ_key, reports.append)
    return settings, reports


def test_every_option_has_a_text_parser_test() -> None:
    """Every option a user can set is covered by the parsing tables below."""
    covered = {*FLAGS, *CHOICES, *SECONDS, *TEXTS, *LISTS}
    assert covered == set(PARSERS)
    assert set(PARSERS) == {f.name for f in dataclasses.fields(Settings)}


def test_defaults_match_the_documented_table() -> None:
    """With no options the middleware runs with the defaults the documentation promises."""
    settings = from_keywords({})
    assert settings == Settings()
    assert (settings.enabled, settings.mode, settings.modules) == (True, "auto", "project")
    assert (settings.settle, settings.interval, settings.debug) == (0.05, 1.0, False)
    assert (settings.retry, settings.observer, settings.preflight) == ("auto", "auto", "auto")
    assert (settings.watch, settings.exclude) == ((), ())
    assert (settings.trigger, settings.control, settings.secret) == (None, None, None)


def test_option_keys_are_the_documented_names() -> None:
    """`SetEnv reload_middleware.settle` and `RELOAD_MIDDLEWARE_SETTLE` are the names to use."""
    assert environ_key("settle") == "reload_middleware.settle"
    assert os_key("settle") == "RELOAD_MIDDLEWARE_SETTLE"


# --- text forms -------------------------------------------------------------------------

FLAG_TEXTS = [
    ("on", True), ("ON", True), ("On", True),
    ("true", True), ("TRUE", True), ("True", True),
    ("yes", True), ("YES", True), ("Yes", True),
    ("1", True), (" on ", True), ("\tyes\n", True),
    ("off", False), ("OFF", False), ("Off", False),
    ("false", False), ("FALSE", False), ("False", False),
    ("no", False), ("NO", False), ("No", False),
    ("0", False), (" off ", False),
]  # fmt: skip


@pytest.mark.parametrize("name", FLAGS)
@pytest.mark.parametrize(("text", "expected"), FLAG_TEXTS, ids=[repr(t) for t, _ in FLAG_TEXTS])
def test_flag_text_forms(name: str, text: str, expected: bool) -> None:
    """`SetEnv reload_middleware.debug On` (or any case of the six words) sets the flag."""
    assert PARSERS[name](text) is expected


BAD_FLAGS = ["", "   ", "maybe", "2", "-1", "y", "n", "t", "f", "onn", "enable", "disabled", "0.0"]


@pytest.mark.parametrize("name", FLAGS)
@pytest.mark.parametrize("text", BAD_FLAGS, ids=[repr(t) for t in BAD_FLAGS])
def test_flag_text_refused(name: str, text: str) -> None:
    """A word that is not one of the flag words is refused with the list of accepted words."""
    with pytest.raises(ValueError, match=r"on/off, true/false, yes/no or 1/0"):
        PARSERS[name](text)


GOOD_CHOICES = [
    (name, text, word)
    for name, words in CHOICES.items()
    for word in words
    for text in (word, word.upper(), f" {word.capitalize()} ")
]


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    GOOD_CHOICES,
    ids=[f"{n}-{t!r}" for n, t, _ in GOOD_CHOICES],
)
def test_choice_text_forms(name: str, text: str, expected: str) -> None:
    """A choice is accepted in any case and with surrounding blanks, and stored lower-case."""
    assert PARSERS[name](text) == expected


BAD_CHOICES = [
    ("mode", ""), ("mode", "restarts"), ("mode", "signal"), ("mode", "hook"),
    ("modules", "none"), ("modules", "project,all"), ("modules", "on"),
    ("preflight", "yes"), ("preflight", "compiled"), ("preflight", ""),
    ("retry", "sometimes"), ("retry", "true"), ("retry", "   "),
    ("observer", "inotify"), ("observer", "poll"), ("observer", "native polling"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "text"), BAD_CHOICES, ids=[f"{n}-{t!r}" for n, t in BAD_CHOICES]
)
def test_choice_text_refused(name: str, text: str) -> None:
    """An unknown choice is refused with every accepted word quoted in the message."""
    with pytest.raises(ValueError) as info:
        PARSERS[name](text)
    for word in CHOICES[name]:
        assert repr(word) in str(info.value)


GOOD_SECONDS = [
    ("settle", "0", 0.0), ("settle", "0.2", 0.2), ("settle", " 1.5 ", 1.5),
    ("settle", "1e-3", 0.001), ("settle", "10", 10.0), ("settle", "+0.5", 0.5),
    ("interval", "0.01", 0.01), ("interval", "2", 2.0), ("interval", "1E1", 10.0),
    ("interval", "3600", 3600.0),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "text", "expected"), GOOD_SECONDS, ids=[f"{n}-{t!r}" for n, t, _ in GOOD_SECONDS]
)
def test_seconds_text_forms(name: str, text: str, expected: float) -> None:
    """`SetEnv reload_middleware.settle 0.2` gives a settle time of 0.2 seconds."""
    assert PARSERS[name](text) == pytest.approx(expected)


BAD_SECONDS = [
    ("settle", "nan", "0 to 10"), ("settle", "NaN", "0 to 10"),
    ("settle", "inf", "0 to 10"), ("settle", "-inf", "0 to 10"),
    ("settle", "Infinity", "0 to 10"), ("settle", "1e999", "0 to 10"),
    ("settle", "-0.1", "0 to 10"), ("settle", "-1", "0 to 10"),
    ("settle", "", "0 to 10"), ("settle", "   ", "0 to 10"),
    ("settle", "fast", "0 to 10"), ("settle", "0.2s", "0 to 10"),
    ("settle", "0x10", "0 to 10"), ("settle", "1,5", "0 to 10"),
    ("interval", "0", "0.01 to 3600"), ("interval", "0.001", "0.01 to 3600"),
    ("interval", "-1", "0.01 to 3600"), ("interval", "nan", "0.01 to 3600"),
    ("interval", "inf", "0.01 to 3600"), ("interval", "", "0.01 to 3600"),
    ("settle", "10.001", "0 to 10"), ("settle", "1e10", "0 to 10"),
    ("settle", "1e300", "0 to 10"), ("interval", "3601", "0.01 to 3600"),
    ("interval", "1e11", "0.01 to 3600"), ("interval", "1e300", "0.01 to 3600"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "text", "accepted"),
    BAD_SECONDS,
    ids=[f"{n}-{t!r}" for n, t, _ in BAD_SECONDS],
)
def test_seconds_text_refused(name: str, text: str, accepted: str) -> None:
    """NaN, infinities, negatives, blanks and units are refused, saying which numbers work."""
    with pytest.raises(ValueError, match=rf"a number of seconds, {accepted}"):
        PARSERS[name](text)


GOOD_TEXTS = [
    ("trigger", "/srv/app/touch.me", "/srv/app/touch.me"),
    ("trigger", "  restart.txt \n", "restart.txt"),
    ("control", "/__reload__", "/__reload__"),
    ("secret", f" {SECRET} ", SECRET),
]


@pytest.mark.parametrize(
    ("name", "text", "expected"), GOOD_TEXTS, ids=[f"{n}-{t!r}" for n, t, _ in GOOD_TEXTS]
)
def test_text_forms(name: str, text: str, expected: str) -> None:
    """A path or token is taken as written, without surrounding blanks."""
    assert PARSERS[name](text) == expected


@pytest.mark.parametrize("name", TEXTS)
@pytest.mark.parametrize("text", ["", " ", "\t\n"], ids=["empty", "space", "blanks"])
def test_text_refused_when_blank(name: str, text: str) -> None:
    """An empty trigger, control path or secret is refused rather than silently used."""
    with pytest.raises(ValueError, match="a non-empty string"):
        PARSERS[name](text)


P = os.pathsep
GOOD_LISTS = [
    ("watch", "templates", ("templates",)),
    ("watch", f"templates{P}/srv/app/config", ("templates", "/srv/app/config")),
    ("watch", f" a {P}{P} b {P}", ("a", "b")),
    ("watch", "", ()),
    ("watch", P, ()),
    ("watch", "a,b", ("a,b",)),
    ("exclude", "*.log", ("*.log",)),
    ("exclude", "*.log, */migrations/*", ("*.log", "*/migrations/*")),
    ("exclude", " *.log ,, node_modules ,", ("*.log", "node_modules")),
    ("exclude", "", ()),
    ("exclude", f"a{P}b", (f"a{P}b",)),
]
LIST_IDS = [
    "watch-one", "watch-two", "watch-blanks-and-empty-parts", "watch-empty", "watch-only-sep",
    "watch-comma-is-not-a-separator", "exclude-one", "exclude-two", "exclude-blanks",
    "exclude-empty", "exclude-pathsep-is-not-a-separator",
]  # fmt: skip


@pytest.mark.parametrize(("name", "text", "expected"), GOOD_LISTS, ids=LIST_IDS)
def test_list_text_forms(name: str, text: str, expected: tuple[str, ...]) -> None:
    """Watch paths split on os.pathsep and exclude patterns on commas, blanks dropped."""
    assert PARSERS[name](text) == expected


# --- keywords ---------------------------------------------------------------------------

GOOD_KEYWORDS: list[tuple[dict[str, object], dict[str, object]]] = [
    ({"enabled": False}, {"enabled": False}),
    ({"enabled": "off"}, {"enabled": False}),
    ({"debug": True}, {"debug": True}),
    ({"debug": "YES"}, {"debug": True}),
    ({"mode": "Reload"}, {"mode": "reload"}),
    ({"modules": "all"}, {"modules": "all"}),
    ({"preflight": "import"}, {"preflight": "import"}),
    ({"retry": "never"}, {"retry": "never"}),
    ({"observer": "polling"}, {"observer": "polling"}),
    ({"settle": 0}, {"settle": 0.0}),
    ({"settle": 0.2}, {"settle": 0.2}),
    ({"settle": "0.2"}, {"settle": 0.2}),
    ({"interval": 2}, {"interval": 2.0}),
    ({"watch": "templates"}, {"watch": ("templates",)}),
    ({"watch": ["a", Path("b")]}, {"watch": ("a", "b")}),
    ({"watch": ()}, {"watch": ()}),
    ({"exclude": ("*.log", "node_modules")}, {"exclude": ("*.log", "node_modules")}),
    ({"exclude": "*.log"}, {"exclude": ("*.log",)}),
    ({"trigger": Path("/srv/touch.me")}, {"trigger": "/srv/touch.me"}),
    ({"trigger": None}, {"trigger": None}),
    ({"control": "/__reload__", "secret": SECRET}, {"control": "/__reload__", "secret": SECRET}),
    ({"secret": SHORT_SECRET}, {"secret": SHORT_SECRET, "control": None}),
]
GOOD_KEYWORD_IDS = [
    "enabled-bool", "enabled-text", "debug-bool", "debug-text", "mode-any-case", "modules",
    "preflight", "retry", "observer", "settle-int", "settle-float", "settle-text",
    "interval-int", "watch-str", "watch-list-with-pathlike", "watch-empty", "exclude-tuple",
    "exclude-str", "trigger-pathlike", "trigger-none", "control-with-secret",
    "secret-without-control",
]  # fmt: skip


@pytest.mark.parametrize(("options", "expected"), GOOD_KEYWORDS, ids=GOOD_KEYWORD_IDS)
def test_keywords_accepted(options: dict[str, object], expected: dict[str, object]) -> None:
    """`ReloadMiddleware(app, settle=0.2, ...)` takes Python values or their text forms."""
    settings = from_keywords(options)
    for name, value in expected.items():
        assert getattr(settings, name) == value


def test_keyword_string_list_is_one_item() -> None:
    """`watch="a:b"` is one path: splitting on os.pathsep is only for the text form."""
    assert from_keywords({"watch": f"a{P}b"}).watch == (f"a{P}b",)
    assert from_keywords({"exclude": "a,b"}).exclude == ("a,b",)


BAD_KEYWORDS: list[tuple[str, object, str, str]] = [
    # (option, value, how the value is shown, what the message says is accepted)
    ("enabled", "maybe", "'maybe'", "on/off, true/false, yes/no or 1/0"),
    ("enabled", 1, "1", "on/off, true/false, yes/no or 1/0"),
    ("enabled", None, "None", "on/off, true/false, yes/no or 1/0"),
    ("debug", "yes please", "'yes please'", "on/off, true/false, yes/no or 1/0"),
    ("mode", "fast", "'fast'", "'auto' or 'restart' or 'reload'"),
    ("mode", None, "None", "'auto' or 'restart' or 'reload'"),
    ("modules", "some", "'some'", "'project' or 'all' or 'off'"),
    ("modules", False, "False", "'project' or 'all' or 'off'"),
    ("preflight", "always", "'always'", "'auto' or 'compile' or 'import' or 'off'"),
    ("retry", True, "True", "'auto' or 'always' or 'never'"),
    ("observer", "inotify", "'inotify'", "'auto' or 'native' or 'polling'"),
    ("settle", -1, "-1", "a number of seconds, 0 to 10"),
    ("settle", -0.5, "-0.5", "a number of seconds, 0 to 10"),
    ("settle", float("nan"), "nan", "a number of seconds, 0 to 10"),
    ("settle", float("inf"), "inf", "a number of seconds, 0 to 10"),
    ("settle", "", "''", "a number of seconds, 0 to 10"),
    ("settle", True, "True", "a number of seconds, 0 to 10"),
    ("settle", [0.1], "[0.1]", "a number of seconds, 0 to 10"),
    ("interval", 0, "0", "a number of seconds, 0.01 to 3600"),
    ("interval", "nan", "'nan'", "a number of seconds, 0.01 to 3600"),
    ("settle", 1e10, "10000000000.0", "a number of seconds, 0 to 10"),
    ("settle", 10**400, "1000", "a number of seconds, 0 to 10"),
    ("interval", 1e11, "100000000000.0", "a number of seconds, 0.01 to 3600"),
    ("watch", 42, "42", "a path or pattern, or a list of them"),
    ("watch", None, "None", "a path or pattern, or a list of them"),
    ("watch", ["ok", 3], "['ok', 3]", "a path or pattern, or a list of them"),
    ("watch", b"bytes", "b'bytes'", "a path or pattern, or a list of them"),
    ("exclude", [None], "[None]", "a path or pattern, or a list of them"),
    ("trigger", "", "''", "a non-empty string"),
    ("trigger", "   ", "'   '", "a non-empty string"),
    ("secret", "", "''", "a non-empty string"),
    ("control", "__reload__", "'__reload__'", "a URL path starting with '/'"),
]
BAD_KEYWORD_IDS = [f"{name}-{shown}" for name, _, shown, _ in BAD_KEYWORDS]


@pytest.mark.parametrize(("name", "value", "shown", "accepted"), BAD_KEYWORDS, ids=BAD_KEYWORD_IDS)
def test_bad_keyword_raises_value_error(
    name: str, value: object, shown: str, accepted: str
) -> None:
    """A bad keyword stops construction with a message naming option, value and what works."""
    options: dict[str, object] = {name: value}
    if name == "control":
        options["secret"] = SECRET
    with pytest.raises(ValueError) as info:
        from_keywords(options)
    message = str(info.value)
    assert f"option {name!r}" in message
    assert shown in message
    assert accepted in message


@pytest.mark.parametrize(
    "options",
    [{"settel": 0.1}, {"ENABLED": True}, {"watch_paths": ["x"]}, {"settle": 0.1, "colour": 1}],
    ids=["misspelt", "upper-case", "other-name", "one-of-several"],
)
def test_unknown_keyword_raises_type_error(options: dict[str, object]) -> None:
    """A misspelt keyword is a TypeError naming it and listing the known options."""
    with pytest.raises(TypeError) as info:
        from_keywords(options)
    message = str(info.value)
    unknown = [name for name in options if name not in PARSERS]
    for name in unknown:
        assert name in message
    assert "known: " + ", ".join(PARSERS) in message


def test_huge_int_settle_is_a_value_error() -> None:
    """`settle=10**400` is refused with the usual ValueError, not an OverflowError."""
    with pytest.raises(ValueError, match="settle"):
        from_keywords({"settle": 10**400})


@pytest.mark.parametrize("name", SECONDS)
def test_false_is_not_a_number_of_seconds(name: str) -> None:
    """`settle=False` is refused like `settle=True`, with the value the user wrote."""
    with pytest.raises(ValueError) as info:
        from_keywords({name: False})
    assert "got False" in str(info.value)


CONTROL_REFUSED = [
    ({"control": "/__reload__"}, "needs a 'secret' of 16 characters or more"),
    ({"control": "/__reload__", "secret": SHORT_SECRET}, "needs a 'secret' of 16 characters"),
    ({"control": "/__reload__", "secret": None}, "needs a 'secret' of 16 characters"),
]


@pytest.mark.parametrize(
    ("options", "message"), CONTROL_REFUSED, ids=["no-secret", "15-chars", "secret-none"]
)
def test_keyword_control_needs_a_long_secret(options: dict[str, object], message: str) -> None:
    """`control=` without a secret of at least 16 characters stops construction."""
    with pytest.raises(ValueError, match=message):
        from_keywords(options)


def test_keyword_control_with_exactly_16_characters() -> None:
    """A secret of exactly 16 characters is long enough to turn the control endpoint on."""
    secret = "x" * config.MIN_SECRET
    settings = from_keywords({"control": "/__reload__", "secret": secret})
    assert settings.control == "/__reload__"


# --- overlay: environ key > OS variable > keyword ---------------------------------------

PRECEDENCE: list[tuple[str, object, str | None, str | None, object]] = [
    # (option, keyword, OS variable, environ key, result)
    ("settle", 0.1, "0.2", "0.3", 0.3),
    ("settle", 0.1, "0.2", None, 0.2),
    ("settle", 0.1, None, "0.3", 0.3),
    ("settle", 0.1, None, None, 0.1),
    ("mode", "restart", "reload", "auto", "auto"),
    ("mode", "restart", "reload", None, "reload"),
    ("debug", False, "on", "off", False),
    ("debug", True, "off", None, False),
    ("debug", False, None, "yes", True),
    ("enabled", True, "0", None, False),
    ("trigger", "/kw", "/os", "/environ", "/environ"),
    ("trigger", "/kw", "/os", None, "/os"),
    ("interval", 2.0, None, "0.5", 0.5),
    ("observer", "native", "polling", None, "polling"),
]
PRECEDENCE_IDS = [
    f"{name}-kw{'+os' if o else ''}{'+environ' if e else ''}" for name, _, o, e, _ in PRECEDENCE
]


def from_three_sources(
    name: str, keyword: object, os_value: str | None, environ_value: str | None
) -> tuple[Settings, list[str]]:
    """One option given as a keyword, and (if not None) as OS variable and environ key."""
    os_environ = {} if os_value is None else {os_key(name): os_value}
    wsgi_environ = {} if environ_value is None else {environ_key(name): environ_value}
    return configure({name: keyword}, os_environ, wsgi_environ)


@pytest.mark.parametrize(
    ("name", "keyword", "os_value", "environ_value", "expected"), PRECEDENCE, ids=PRECEDENCE_IDS
)
def test_scalar_precedence(
    name: str, keyword: object, os_value: str | None, environ_value: str | None, expected: object
) -> None:
    """`SetEnv` beats the OS variable, which beats the keyword given in the script."""
    settings, reports = from_three_sources(name, keyword, os_value, environ_value)
    assert getattr(settings, name) == expected
    assert reports == []


LIST_JOINS = [
    ("watch", ["kw"], f"os1{P}os2", "environ", ("kw", "os1", "os2", "environ")),
    ("watch", [], None, "environ", ("environ",)),
    ("watch", ["kw"], None, None, ("kw",)),
    ("watch", ["kw"], "os", None, ("kw", "os")),
    ("exclude", ["*.kw"], "*.os1, *.os2", "*.environ", ("*.kw", "*.os1", "*.os2", "*.environ")),
    ("exclude", [], "*.os", "", ("*.os",)),
]


@pytest.mark.parametrize(
    ("name", "keyword", "os_value", "environ_value", "expected"),
    LIST_JOINS,
    ids=["watch-all-three", "watch-environ", "watch-keyword", "watch-kw+os", "exclude-all-three",
         "exclude-empty-environ"],
)
def test_lists_join_all_three_sources(
    name: str,
    keyword: list[str],
    os_value: str | None,
    environ_value: str | None,
    expected: tuple[str, ...],
) -> None:
    """Watch paths and exclude patterns from the keyword, OS and `SetEnv` are all used."""
    settings, reports = from_three_sources(name, keyword, os_value, environ_value)
    assert getattr(settings, name) == expected
    assert reports == []


BAD_OVERLAY = [
    # (option, keyword, OS variable, bad environ value, kept value, accepted)
    ("settle", 0.2, "0.3", "soon", 0.3, "a number of seconds"),
    ("settle", 0.2, None, "nan", 0.2, "a number of seconds"),
    ("interval", 2.0, None, "0", 2.0, "0.01 to 3600"),
    ("settle", 0.2, None, "1e10", 0.2, "0 to 10"),
    ("settle", 0.2, "0.3", "1e300", 0.3, "0 to 10"),
    ("interval", 2.0, None, "1e11", 2.0, "0.01 to 3600"),
    ("interval", 2.0, "5", "3601", 5.0, "0.01 to 3600"),
    ("enabled", True, "off", "maybe", False, "on/off"),
    ("debug", True, None, "", True, "on/off"),
    ("mode", "reload", None, "fast", "reload", "'auto' or 'restart' or 'reload'"),
    ("modules", "all", "off", "some", "off", "'project' or 'all' or 'off'"),
    ("preflight", "compile", None, "yes", "compile", "'import'"),
    ("retry", "never", None, "sometimes", "never", "'always'"),
    ("observer", "polling", None, "inotify", "polling", "'native'"),
    ("trigger", "/kw", "/os", "  ", "/os", "a non-empty string"),
]


@pytest.mark.parametrize(
    ("name", "keyword", "os_value", "bad", "kept", "accepted"),
    BAD_OVERLAY,
    ids=[f"{row[0]}-{row[3]!r}" for row in BAD_OVERLAY],
)
def test_bad_environ_value_is_reported_and_ignored(
    name: str, keyword: object, os_value: str | None, bad: str, kept: object, accepted: str
) -> None:
    """A bad `SetEnv` value is logged once and the option keeps its value from OS or keyword."""
    os_environ = {} if os_value is None else {os_key(name): os_value}
    settings, reports = configure({name: keyword}, os_environ, {environ_key(name): bad})
    assert getattr(settings, name) == kept
    assert len(reports) == 1
    assert environ_key(name) in reports[0]
    assert repr(bad) in reports[0]
    assert accepted in reports[0]
    assert reports[0].endswith("ignored")


@pytest.mark.parametrize(
    ("name", "value"), [("settle", "1e10"), ("interval", "1e11")], ids=["settle", "interval"]
)
def test_too_large_os_variable_is_reported_and_ignored(name: str, value: str) -> None:
    """RELOAD_MIDDLEWARE_SETTLE=1e10 is logged once; the option keeps its default."""
    settings, reports = configure({}, {os_key(name): value}, {})
    assert getattr(settings, name) == getattr(Settings(), name)
    assert len(reports) == 1 and os_key(name) in reports[0] and repr(value) in reports[0]


def test_bad_os_variable_is_reported_and_ignored() -> None:
    """A bad `RELOAD_MIDDLEWARE_SETTLE` is logged naming the variable and the keyword stays."""
    settings, reports = configure({"settle": 0.2}, {"RELOAD_MIDDLEWARE_SETTLE": "-1"}, {})
    assert settings.settle == 0.2
    assert len(reports) == 1
    assert "RELOAD_MIDDLEWARE_SETTLE" in reports[0]
    assert "'-1'" in reports[0]


def test_several_bad_values_each_reported() -> None:
    """Each bad value gets its own log line and the good values beside them still apply."""
    environ = {
        environ_key("settle"): "x",
        environ_key("mode"): "y",
        environ_key("debug"): "on",
    }
    settings, reports = configure({}, {}, environ)
    assert settings.debug is True
    assert (settings.settle, settings.mode) == (0.05, "auto")
    assert len(reports) == 2


def test_overlay_returns_base_when_nothing_is_set() -> None:
    """An environ without any of our keys leaves every option as the script set it."""
    base = from_keywords({"settle": 0.3, "watch": ["a"], "debug": True})
    reports: list[str] = []
    assert overlay(base, {"PATH_INFO": "/", "REQUEST_METHOD": "GET"}, environ_key,
                   reports.append) == base
    assert reports == []


SPOOFED_KEYS: dict[str, Callable[[str], str]] = {
    "http-header": lambda name: f"HTTP_RELOAD_MIDDLEWARE_{name.upper()}",
    "http-x-header": lambda name: f"HTTP_X_RELOAD_MIDDLEWARE_{name.upper()}",
    "upper-case-name": lambda name: f"reload_middleware.{name.upper()}",
    "dashed-prefix": lambda name: f"reload-middleware.{name}",
    "padded-key": lambda name: f" reload_middleware.{name}",
}
DIFFERENT_VALUES = {
    "enabled": "off", "mode": "restart", "watch": "/etc", "exclude": "*.py", "modules": "off",
    "settle": "9", "preflight": "off", "trigger": "/tmp/x", "retry": "always", "debug": "on",
    "observer": "polling", "interval": "5", "control": "/__reload__", "secret": SECRET,
    "templates": "off",
    "live": "on", "static": "/srv/static",
}  # fmt: skip


@pytest.mark.parametrize("form", list(SPOOFED_KEYS), ids=list(SPOOFED_KEYS))
def test_only_exact_environ_keys_are_read(form: str) -> None:
    """A client sending `Reload-Middleware-Enabled: off` (or a near-miss key) changes nothing."""
    assert set(DIFFERENT_VALUES) == set(PARSERS)
    key = SPOOFED_KEYS[form]
    environ = {key(name): value for name, value in DIFFERENT_VALUES.items()}
    base = from_keywords({})
    reports: list[str] = []
    assert overlay(base, environ, environ_key, reports.append) == base
    assert reports == []


def test_named_spoofed_enabled_keys_change_nothing() -> None:
    """The header forms of `enabled` and a capitalised name cannot switch reloading off."""
    environ = {
        "HTTP_RELOAD_MIDDLEWARE_ENABLED": "off",
        "HTTP_X_RELOAD_MIDDLEWARE_ENABLED": "off",
        "reload_middleware.ENABLED": "off",
    }
    settings, reports = configure({}, {}, environ)
    assert settings.enabled is True
    assert reports == []


def test_os_variables_are_not_read_as_environ_keys() -> None:
    """The OS overlay reads only `RELOAD_MIDDLEWARE_*`, not the lower-case environ key names."""
    reports: list[str] = []
    settings = overlay(Settings(), {environ_key("debug"): "on"}, os_key, reports.append)
    assert settings.debug is False


CONTROL_OVERLAY: list[tuple[str, dict[str, object], dict[str, str], dict[str, str], str | None]] = [
    # (id, keywords, OS variables, environ keys, resulting control)
    ("environ-control-no-secret", {}, {}, {environ_key("control"): "/__reload__"}, None),
    (
        "environ-control-short-secret",
        {},
        {},
        {environ_key("control"): "/__reload__", environ_key("secret"): SHORT_SECRET},
        None,
    ),
    (
        "environ-control-long-secret",
        {},
        {},
        {environ_key("control"): "/__reload__", environ_key("secret"): SECRET},
        "/__reload__",
    ),
    (
        "environ-control-os-secret",
        {},
        {os_key("secret"): SECRET},
        {environ_key("control"): "/__reload__"},
        "/__reload__",
    ),
    (
        "os-control-no-secret",
        {},
        {os_key("control"): "/__reload__"},
        {},
        None,
    ),
    (
        "keyword-control-environ-short-secret",
        {"control": "/__reload__", "secret": SECRET},
        {},
        {environ_key("secret"): SHORT_SECRET},
        None,
    ),
]


@pytest.mark.parametrize(
    ("keywords", "os_environ", "wsgi_environ", "expected"),
    [row[1:] for row in CONTROL_OVERLAY],
    ids=[row[0] for row in CONTROL_OVERLAY],
)
def test_overlay_control_needs_a_long_secret(
    keywords: dict[str, object],
    os_environ: dict[str, str],
    wsgi_environ: dict[str, str],
    expected: str | None,
) -> None:
    """`SetEnv reload_middleware.control` without a 16-character secret is logged, endpoint off."""
    settings, reports = configure(keywords, os_environ, wsgi_environ)
    assert settings.control == expected
    if expected is None:
        assert len(reports) == 1
        assert "needs a 'secret' of 16 characters or more" in reports[0]
        assert "stays off" in reports[0]
    else:
        assert reports == []


def test_bad_environ_control_keeps_the_keyword_control() -> None:
    """A bad `SetEnv reload_middleware.control` is logged and the script's endpoint stays on."""
    keywords = {"control": "/__reload__", "secret": SECRET}
    settings, reports = configure(keywords, {}, {environ_key("control"): "reload"})
    assert len(reports) == 1
    assert "a URL path starting with '/'" in reports[0]
    assert settings.control == "/__reload__"


ENVIRON_TEXT = st.fixed_dictionaries(
    {},
    optional={environ_key(name): st.text() for name in PARSERS},
)


@hypothesis_settings(database=None, max_examples=300, deadline=None)
@given(environ=ENVIRON_TEXT)
def test_overlay_never_raises(environ: dict[str, str]) -> None:
    """Whatever text `SetEnv` puts in our keys, the app keeps serving with valid settings."""
    reports: list[str] = []
    settings = overlay(Settings(), environ, environ_key, reports.append)
    assert isinstance(settings, Settings)
    assert all(isinstance(report, str) for report in reports)
    # What comes out is always a configuration the keywords would have accepted.
    assert from_keywords(dataclasses.asdict(settings)) == settings
