"""MkDocs hook: the pages' generated parts, rendered from the code at build time.

The configuration reference is written nowhere by hand. `config.PARSERS` names the
options, `config.Settings` gives their types and defaults, `config.DESCRIPTIONS` says
what each does and `config.accepted` what its text form takes, so a new option, a
changed default or a new accepted value shows in the next build, and a page cannot
promise an option the code does not read. A page asks for a part with a marker line:

>>> render("before\\n<!-- default-excludes -->\\n").splitlines()[1].startswith("`*.pyc`")
True
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable

from reload_middleware import config
from reload_middleware.watching import paths

FIELDS = {field.name: field for field in dataclasses.fields(config.Settings)}


def text_form(value: object) -> str:
    """A default as it would be written in `SetEnv` or an OS variable.

    >>> text_form(True), text_form(None), text_form(()), text_form(0.05)
    ('on', 'unset', 'none', '0.05')
    """
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None:
        return "unset"
    if value == ():
        return "none"
    return str(value)


def keyword_type(name: str) -> str:
    """The keyword's type, as `Settings` declares it: an enumeration by its values, a
    list as one item or several.

    >>> keyword_type("mode"), keyword_type("settle")
    ("`'auto' | 'restart' | 'reload'`", '`float`')
    """
    declared = str(FIELDS[name].type)
    alias = getattr(config, declared, None)
    if typing.get_origin(alias) is typing.Literal:
        declared = " | ".join(repr(value) for value in typing.get_args(alias))
    if name in config.LISTS:
        return f"`{declared}`; one item, or a list of them"
    return f"`{declared}`"


def option(name: str) -> str:
    """One option's entry: what it does, then every way to set it."""
    return "\n".join([
        f"### `{name}`",
        "",
        config.DESCRIPTIONS[name],
        "",
        f"- keyword: `ReloadMiddleware(app, {name}=...)`, {keyword_type(name)}",
        f"- WSGI environ key (Apache `SetEnv`): `{config.environ_key(name)}`",
        f"- OS variable: `{config.os_key(name)}`",
        f"- PasteDeploy filter section: `{name} = ...`",
        f"- text form (all but the keyword; a keyword takes it too): {config.accepted(name)}",
        f"- default: `{text_form(FIELDS[name].default)}`",
        "",
    ])


def options_reference() -> str:
    """The reference: a summary table, then an entry per option, in `PARSERS` order."""
    rows = [
        "| option | environ key / OS variable | default | text form |",
        "|---|---|---|---|",
    ]
    for name in config.PARSERS:
        rows.append(
            f"| [`{name}`](#{name}) | `{config.environ_key(name)}`<br>`{config.os_key(name)}` "
            f"| `{text_form(FIELDS[name].default)}` | {config.accepted(name)} |"
        )
    return "\n".join(rows) + "\n\n" + "\n".join(option(name) for name in config.PARSERS)


def default_excludes() -> str:
    """The built-in exclude patterns, each in code."""
    return ", ".join(f"`{pattern}`" for pattern in paths.DEFAULT_EXCLUDES)


PARTS: dict[str, Callable[[], str]] = {
    "<!-- options -->": options_reference,
    "<!-- default-excludes -->": default_excludes,
}


def render(markdown: str) -> str:
    """`markdown` with each marker line replaced by the part it names."""
    lines = markdown.split("\n")
    return "\n".join(PARTS[line.strip()]() if line.strip() in PARTS else line for line in lines)


def on_page_markdown(markdown: str, **context: object) -> str:
    """MkDocs' event for a page's Markdown before it is converted."""
    return render(markdown)
