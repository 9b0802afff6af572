"""dbt node selection from outside (the state machine's ``select``, ``build --select``): a selector, never options.

The text is split on whitespace (dbt's union) and each word must be a selector in dbt's grammar:

* terms joined by ``,`` (intersection);
* a term is an optional ``@`` or ``N+``/``+`` (ancestors), then ``method:value`` or a bare value (a node name
  or a path), then an optional ``+``/``+N`` (descendants);
* methods: ``tag``, ``config`` (with ``.key`` parts: ``config.materialized:table``), ``source``,
  ``resource_type``, ``package``, ``test_type``, ``fqn``, ``path``, ``file``, ``test_name``, ``exposure``,
  ``access``, ``group``, ``version``, ``unit_test``;
* a value is letters, digits and ``_ . / * -`` (``*`` is dbt's wildcard), and never starts with ``-``.

Anything else (``--vars``, ``--target``, quotes, ``;``, control characters) is an :class:`InputError`, raised
before any work: the text would otherwise become dbt's own arguments.
"""

from __future__ import annotations

import re

from retail_core.errors import InputError

MAX_LENGTH = 2000
METHODS: tuple[str, ...] = (
    "tag",
    "config",
    "source",
    "resource_type",
    "package",
    "test_type",
    "fqn",
    "path",
    "file",
    "test_name",
    "exposure",
    "access",
    "group",
    "version",
    "unit_test",
)

_VALUE = r"[A-Za-z0-9_.*/][A-Za-z0-9_.*/-]*"
_METHOD = rf"(?:{'|'.join(METHODS)})(?:\.[A-Za-z0-9_]+)*"
_TERM = re.compile(rf"(?:@|[0-9]*\+)?(?:{_METHOD}:)?{_VALUE}(?:\+[0-9]*)?")


def parse_selector(text: str | None) -> list[str]:
    """The words of a dbt selection (``[]`` for none), each checked against the grammar in the module doc.

    Raises InputError naming the first word that is not a selector.
    """
    if text is None:
        return []
    if len(text) > MAX_LENGTH:
        raise InputError("dbt selection too long", f"{len(text)} characters", f"keep it under {MAX_LENGTH}")
    words = text.split()
    for word in words:
        if not all(term and _TERM.fullmatch(term) for term in word.split(",")):
            raise InputError(
                "not a dbt selector",
                f"select {word!r}",
                "give node names, paths or method:value terms with + @ * , only; options are not accepted",
            )
    return words
