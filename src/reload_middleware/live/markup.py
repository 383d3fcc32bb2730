"""Where in an HTML page does the live script tag go? A pure scanner over the page's bytes.

The tag goes before the last `</body>` that a browser reads as an end tag: not one in a
comment (it would land inside the comment), nor in the text of a `<script>` (it would
end the page's own script early), a `<style>`, a `<textarea>` or the like, nor inside
an attribute value. Without such a `</body>`, before the last `</html>` read the same
way; without either (an htmx fragment), nowhere.

The scanner follows the HTML tokenizer as far as that takes: comments (`<!-- -->`, and
the `<!-->` and `<!--->` that close at once), `<!...>` and `<?...>` up to the next `>`,
start and end tags with quoted attribute values, and the elements whose text is not
markup. It builds no tree and never fails: a page it cannot read gets no tag.

>>> closing(b"<body><!-- </body> --></body>")
22
>>> closing(b"<p>a fragment</p>") is None
True
"""

from __future__ import annotations

import re

# A tag's name, and its attributes up to (not including) its `>`: quoted values are read
# whole, so a `>` or `</body>` in one is not markup. Each branch takes at least one byte
# and gives none back (atomic groups, possessive classes), so a page of any shape is
# scanned in linear time. No group is repeated possessively (`(...)*+`): Python 3.11
# before 3.11.5 (Debian 12 has 3.11.2) matches such a group wrongly when it holds a
# negative lookahead or can backtrack (CPython gh-100061, gh-106052), which let `</body>`
# pass as an ordinary end tag; an atomic group around a greedy repeat is read right.
_NAME = rb"[A-Za-z][^\t\n\f\r />]*+"
_ATTRIBUTES = (
    rb"(?>(?:[\t\n\f\r /]++"
    rb"|[^\t\n\f\r />][^\t\n\f\r />=]*+"
    rb"""(?>(?:[\t\n\f\r ]*+=[\t\n\f\r ]*+(?:"[^"]*+"?|'[^']*+'?|[^\t\n\f\r >]*+))?))*)"""
)
# Elements whose content is text up to their own end tag, never markup (raw text and
# RCDATA; `<noscript>` as a browser with scripts on reads it, which is where the tag runs).
TEXT_ELEMENTS = frozenset(
    {b"script", b"style", b"textarea", b"title", b"xmp", b"iframe", b"noembed",
     b"noframes", b"noscript"}
)
# A start or end tag up to its `>`, or to the end of the page where it has none.
_TAG = re.compile(rb"<(/?)(" + _NAME + rb")" + _ATTRIBUTES + rb"(>?)")
# Everything the scan can pass over unread, in one go: text, a `<` that starts nothing
# (`a < b`), and whole tags that change nothing (not a text element's start, not
# `</body>` or `</html>`). It stops where markup that matters starts; on a page of
# ordinary tags that is a few times per page, not once per tag.
_SKIP = re.compile(
    rb"(?>(?:[^<]++"
    rb"|<(?![A-Za-z!/?])"
    rb"|<(?!(?i:" + b"|".join(sorted(TEXT_ELEMENTS | {b"plaintext"})) + rb")[\t\n\f\r />])"
    + _NAME + _ATTRIBUTES + rb">"
    rb"|</(?!(?i:body|html)[\t\n\f\r />])" + _NAME + _ATTRIBUTES + rb">"
    rb")*)"
)
_TEXT_END = {
    name: re.compile(rb"</" + name + rb"[\t\n\f\r />]", re.IGNORECASE) for name in TEXT_ELEMENTS
}


def _comment_end(page: bytes, start: int) -> int:
    """Where the comment whose `<!--` ends at `start` ends (after its `-->`)."""
    if page.startswith(b">", start):
        return start + 1
    if page.startswith(b"->", start):
        return start + 2
    ends = [at + len(mark) for mark in (b"-->", b"--!>") if (at := page.find(mark, start)) >= 0]
    return min(ends, default=len(page))


def _after(page: bytes, mark: bytes, start: int) -> int:
    """The position after the next `mark` from `start`, or the end of the page."""
    at = page.find(mark, start)
    return len(page) if at < 0 else at + len(mark)


def _skip(page: bytes, pos: int) -> int:
    """Where the next markup that matters starts from `pos` (the end when none)."""
    skipped = _SKIP.match(page, pos)
    assert skipped is not None  # every part of it is optional: it always matches
    return skipped.end()


def closing(page: bytes) -> int | None:
    """Where the tag goes in `page`: the start of its last `</body>` end tag, else of its
    last `</html>`, else None (a fragment: nothing to add to)."""
    body = html = None
    pos, end = 0, len(page)
    while (lt := _skip(page, pos)) < end:
        if page.startswith(b"<!--", lt):
            pos = _comment_end(page, lt + 4)
            continue
        if page.startswith((b"<!", b"<?"), lt):  # doctype, CDATA, processing: to `>`
            pos = _after(page, b">", lt + 2)
            continue
        tag = _TAG.match(page, lt)
        if tag is None:  # `</>`, `</ x>`, `</` and a digit...: a bogus comment, to `>`
            pos = _after(page, b">", lt + 2)
            continue
        pos = tag.end()
        name = tag.group(2).lower()
        if tag.group(1):
            if not tag.group(3):  # cut off by the end of the page: no tag
                break
            if name == b"body":
                body = lt
            elif name == b"html":
                html = lt
        elif name == b"plaintext":  # everything after it is text
            break
        elif name in TEXT_ELEMENTS:
            text_end = _TEXT_END[name].search(page, pos)
            pos = end if text_end is None else text_end.start()
    return body if body is not None else html


def insert(page: bytes, tag: bytes) -> bytes | None:
    """`page` with `tag` where `closing()` says, or None when it says nowhere.

    >>> insert(b"<html><body>hi</body></html>", b"<script src=/x.js></script>")
    b'<html><body>hi<script src=/x.js></script></body></html>'
    """
    at = closing(page)
    if at is None:
        return None
    return page[:at] + tag + page[at:]
