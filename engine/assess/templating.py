"""The Jinja environment of the HTML reports: the templates in ``templates/`` next to this module.

Three rules hold for every page:

- **Everything a template writes with ``{{ }}`` is escaped**, the way :func:`html.escape` does it (``'`` is
  ``&#x27;``, as the pages always had it); only markup the templates make themselves (a macro's output) passes as it
  is. Nothing is marked safe in Python: the stylesheet is template text (``{% include "report.css" %}``) and the
  base64 images pass through the escaping unchanged (their characters need none).
- **Line breaks in an ``.html.j2`` template are layout only.** When a template is loaded, its lines are stripped and
  joined: with nothing between them next to a tag (a line that ends with ``>``, ``%}`` or ``#}``, or the next one
  starting with ``<``, ``{%`` or ``{#``), with one space inside prose. The templates read one element per line; the
  page comes out compact, every table row on one line.
- **An undefined variable is an error** (:class:`jinja2.StrictUndefined`): the report's view data names every key,
  ``None`` where a section has nothing to show.

jinja2 is imported only when a page is rendered.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from jinja2.ext import Extension
from markupsafe import Markup

if TYPE_CHECKING:
    from collections.abc import Callable

    from jinja2 import Environment
    from markupsafe import Markup

#: The folder of the report templates.
TEMPLATES = Path(__file__).with_name("templates")
#: A line ending so, or the next line starting so, is joined to the next without a space.
_TAG_END = (">", "%}", "#}")
_TAG_START = ("<", "{%", "{#")


def join_lines(source: str) -> str:
    """A template's source with its lines stripped and joined: no space next to a tag, one space inside prose."""
    text = ""
    for line in (raw.strip() for raw in source.splitlines()):
        if not line:
            continue
        if text and not (text.endswith(_TAG_END) or line.startswith(_TAG_START)):
            text += " "
        text += line
    return text


def escape_value(value: Any) -> Markup:
    """``value`` as escaped HTML, like :func:`html.escape` with quotes; a template's own markup as it is."""
    if isinstance(value, Markup):  # a macro's output: markup the templates made, already escaped inside
        return value
    return Markup(escape(str(value), quote=True))


def environment(filters: dict[str, Callable[..., str]]) -> Environment:
    """The environment of the report templates, with ``filters`` (the report's number formats) registered.

    Autoescaping is on; :func:`escape_value` is the ``finalize`` hook, so every ``{{ }}`` output is escaped as
    :func:`html.escape` does (markupsafe would write ``'`` as ``&#39;``). ``trim_blocks`` and ``lstrip_blocks`` are
    not needed: :func:`join_lines` removes every line break of an ``.html.j2`` template. A ``.css`` template is
    included as it is, with its final line break.
    """
    class JoinLines(Extension):
        """Apply :func:`join_lines` to every ``.html.j2`` template when it is loaded."""

        def preprocess(self, source: str, name: str | None, filename: str | None = None) -> str:
            return join_lines(source) if (name or "").endswith(".html.j2") else source

    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
                      finalize=escape_value, keep_trailing_newline=True, extensions=[JoinLines])
    env.filters.update(filters)
    return env
