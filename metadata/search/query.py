"""Reading a user's query: words, quoted phrases, prefixes; and the backends' query syntax.

The query text is never handed to a database's query parser: it is tokenized here, and each
backend gets a query built from the words (``fts5_match``, ``pg_tsquery``), so operators and
symbols are only separators.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from metadata.errors import InvalidInputError
from metadata.model import KIND_BY_PREFIX

#: Longest query accepted (characters); longer ones are refused, never truncated silently.
MAX_QUERY_LENGTH = 500
#: Most words (and phrases) in one query.
MAX_QUERY_TERMS = 32

WORD = re.compile(r"[^\W_]+")
_OUTSIDE_WORD = re.compile(r"([^\W_]+)(\*?)")
_ID_QUERY = re.compile(r"\s*([a-z]+):(\S+)\s*")


def normalize(value: str) -> str:
    """Fold case and strip diacritics (``Café`` -> ``cafe``), keeping everything else."""
    if value.isascii():  # the common case, and 20 times faster
        return value.lower()
    decomposed = unicodedata.normalize("NFKD", value)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def words(value: str) -> list[str]:
    """The searchable words of a text: runs of letters and digits after ``normalize``."""
    return WORD.findall(normalize(value))


@dataclass(frozen=True, slots=True)
class Term:
    """One required part of a query: a word, or a quoted phrase of several words."""

    words: tuple[str, ...]
    prefix: bool = False


@dataclass(frozen=True, slots=True)
class ParsedQuery:
    """A query as the index runs it."""

    terms: tuple[Term, ...]

    @property
    def empty(self) -> bool:
        """True when the text had no letters or digits (nothing can match)."""
        return not self.terms

    @property
    def normalized(self) -> str:
        """All words in order, space-separated: what an exact name or key match equals."""
        return " ".join(w for t in self.terms for w in t.words)


def parse_query(value: str, *, field: str = "query") -> ParsedQuery:
    """Read a user's query: words, ``"quoted phrases"``, ``word*`` prefixes, or a node id.

    The last bare word is always a prefix (search while typing). Anything else (operators,
    parentheses, emoji) is only a separator. A node id (``system:crm``) searches its key.

    Raises:
        InvalidInputError: the query is longer than ``MAX_QUERY_LENGTH`` characters or has more
            than ``MAX_QUERY_TERMS`` words.
    """
    if len(value) > MAX_QUERY_LENGTH:
        raise InvalidInputError(
            f"{field}: {len(value)} characters is too long; a search query has at most "
            f"{MAX_QUERY_LENGTH} characters",
            field=field,
        )
    as_id = _ID_QUERY.fullmatch(value)
    if as_id and as_id.group(1) in KIND_BY_PREFIX:
        value = as_id.group(2)
    terms: list[Term] = []
    last_bare = False
    for i, segment in enumerate(normalize(value).split('"')):
        if i % 2:  # inside quotes (an unclosed quote runs to the end)
            phrase = tuple(WORD.findall(segment))
            if phrase:
                terms.append(Term(phrase))
                last_bare = False
            continue
        for m in _OUTSIDE_WORD.finditer(segment):
            terms.append(Term((m.group(1),), prefix=bool(m.group(2))))
            last_bare = True
    if last_bare:
        terms[-1] = Term(terms[-1].words, prefix=True)
    if len(terms) > MAX_QUERY_TERMS:
        raise InvalidInputError(
            f"{field}: {len(terms)} words is too many; a search query has at most "
            f"{MAX_QUERY_TERMS} words or phrases",
            field=field,
        )
    return ParsedQuery(tuple(terms))


def fts5_match(q: ParsedQuery) -> str:
    """The FTS5 MATCH expression: every term quoted (so never an operator), all required."""
    return " ".join('"' + " ".join(t.words) + '"' + ("*" if t.prefix else "") for t in q.terms)


def pg_tsquery(q: ParsedQuery, weight: str = "") -> str:
    """The ``to_tsquery`` text: quoted lexemes, ``<->`` inside phrases, ``:*`` for prefixes.

    ``weight`` (e.g. ``A``) restricts every lexeme to the columns of that weight.
    """
    parts = []
    for t in q.terms:
        lexemes = [f"'{w}'" + (f":{weight}" if weight else "") for w in t.words]
        if len(lexemes) > 1:
            parts.append("(" + " <-> ".join(lexemes) + ")")
        elif t.prefix:
            parts.append(f"'{t.words[0]}':*{weight}")
        else:
            parts.append(lexemes[0])
    return " & ".join(parts)


__all__ = [
    "MAX_QUERY_LENGTH",
    "MAX_QUERY_TERMS",
    "WORD",
    "ParsedQuery",
    "Term",
    "fts5_match",
    "normalize",
    "parse_query",
    "pg_tsquery",
    "words",
]
