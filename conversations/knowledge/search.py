"""Finding the knowledge articles a person's message needs, with PostgreSQL's full-text search.

Each article keeps a weighted search vector (title above body, stemmed with
KNOWLEDGE_SEARCH_CONFIG) under a GIN index. People on Messenger share few words with the
article that answers them ("do u ship to norway??" against "Delivery outside the EU"), so a
query that needs every word finds almost nothing. Instead an article matches when it holds any
of the message's words, and its score adds up, word by word, how well it matches (PostgreSQL's
rank, where a title counts more than the body) times how rare the word is among the articles:
"order" is in half of a shop's articles and tells them apart far less than "voucher". Words
customers use for the same thing (KNOWLEDGE_SYNONYMS_FILE: "voucher" for "gift card") are
searched too, at half weight. A floor (KNOWLEDGE_MIN_RANK) drops the weakest matches.
SQLite, for development, counts the whole words an article shares with the message instead.
"""

import contextlib
import functools
import logging
import math
import operator
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.postgres.search import SearchQuery, SearchRank
from django.core.cache import cache
from django.db import DatabaseError, connection, transaction
from django.db.models import F, FloatField, Q, QuerySet, Value
from redis.exceptions import RedisError

from conversations.models import KnowledgeArticle, Message
from conversations.prompts import message_said

logger = logging.getLogger(__name__)

_WORD = re.compile(r"[^\W_]+")
# A message this short ("and to norway?") is searched together with the person's previous one.
_SHORT_QUERY_WORDS = 4
_QUERY_MAX_WORDS = 40
# A synonym found for a message counts this much of one of its own words.
_SYNONYM_WEIGHT = 0.5
# Articles scored per search, about; the rest cannot be among the best (see _search_postgresql).
_CANDIDATES_MAX = 500
# Words whose counts a process keeps, at most (a few MB).
_COUNTS_KEPT_MAX = 50_000
# What the development search leaves out, as PostgreSQL's English stop words do: words of three
# letters or more that say nothing of a message's topic.
_COMMON_WORDS = frozenset(
    """about above after again against all and any are because been before being below between
    both but can could did does doing down during each few for from further had has have having
    her here hers herself him himself his how into its itself just more most myself nor not now
    off once only other our ours ourselves out over own same she should some such than that the
    their theirs them themselves then there these they this those through too under until very
    was were what when where which while who whom why will with would you your yours yourself
    yourselves""".split()
)
# Bumped on every change to the articles (knowledge_changed), in the cache all processes share.
_VERSION_KEY = "knowledge:version"


def knowledge_relevant(
    *, query: list[Message], history: list[Message], page_id: str | None = None
) -> list[KnowledgeArticle]:
    """The approved articles that best match what the person asks now, best first; never raises.

    Only articles for every Page, and those for Page `page_id`, are searched. A short message is searched together with the person's message before it, which is often
    what it refers to. If the search fails, the reply goes out without knowledge.
    """
    # A voice message's transcript and an image's description are searched like text.
    text = " ".join(message_said(message) for message in query)
    if len(words(text)) < _SHORT_QUERY_WORDS:
        previous = next((m for m in reversed(history) if m.role == Message.Role.CLIENT and m.text), None)
        if previous is not None:
            text = f"{previous.text} {text}"
    try:
        # Inside a caller's transaction a failed search must not break it: a savepoint. Outside
        # one a failed query breaks nothing, and a transaction would be two round trips for nothing.
        with transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext():
            return knowledge_search(text=text, page_id=page_id)
    except (DatabaseError, RedisError, OSError):
        logger.exception("Knowledge search failed; answering without knowledge")
        return []


def knowledge_search(*, text: str, page_id: str | None = None) -> list[KnowledgeArticle]:
    """The approved articles for every Page, or for Page `page_id`, that match `text` best, best
    first, at most KNOWLEDGE_TOP_K.

    How rare a word is counts over every approved article, whichever Page it is for.
    """
    own = words(text)[:_QUERY_MAX_WORDS]
    if not own or settings.KNOWLEDGE_TOP_K < 1:
        return []
    articles = KnowledgeArticle.objects.filter(Q(page__isnull=True) | Q(page_id=page_id), approved=True)
    if connection.vendor != "postgresql":
        return _search_by_counting(terms=own, articles=articles)
    terms = {word: 1.0 for word in own}
    for synonym in _synonyms_of(own):
        terms.setdefault(synonym, _SYNONYM_WEIGHT)
    return _search_postgresql(terms=terms, articles=articles)


def words(text: str) -> list[str]:
    """The distinct words of `text`, lower-cased, in order."""
    return list(dict.fromkeys(_WORD.findall(text.lower())))


def _search_postgresql(
    *, terms: dict[str, float], articles: QuerySet[KnowledgeArticle]
) -> list[KnowledgeArticle]:
    config = settings.KNOWLEDGE_SEARCH_CONFIG
    frequencies = _document_frequencies(terms=list(terms))
    # plainto_tsquery or phraseto_tsquery per term: stemmed, stop words dropped, no syntax to escape.
    queries = {
        term: SearchQuery(term, config=config, search_type="phrase" if " " in term else "plain")
        for term in terms
        if frequencies.of(term)
    }
    if not queries:
        return []
    # The candidates are the articles holding the rarest words, until about _CANDIDATES_MAX of
    # them: words most articles hold ("order", "get") still add to a candidate's score, but
    # scoring every article that holds them would take too long with thousands of articles.
    selective, candidates = [], 0
    for term in sorted(queries, key=frequencies.of):
        if selective and candidates + frequencies.of(term) > _CANDIDATES_MAX:
            break
        selective.append(queries[term])
        candidates += frequencies.of(term)
    score = functools.reduce(
        operator.add,
        (
            SearchRank(F("search_vector"), query)
            * Value(terms[term] * frequencies.rarity(term), FloatField())
            for term, query in queries.items()
        ),
    )
    return list(
        articles.filter(search_vector=functools.reduce(operator.or_, selective))
        .defer("search_vector")
        .annotate(score=score)
        .filter(score__gte=settings.KNOWLEDGE_MIN_RANK)
        .order_by("-score", "id")[: settings.KNOWLEDGE_TOP_K]
    )


@dataclass
class _Frequencies:
    """How many approved articles hold each term, out of `articles`, as of `version`."""

    version: str | None
    articles: int
    counts: dict[str, int]

    def of(self, term: str) -> int:
        return self.counts[term]

    def rarity(self, term: str) -> float:
        """The inverse document frequency, scaled to 1 for a term one article holds, so that
        scores (and KNOWLEDGE_MIN_RANK) mean the same for 30 articles and 10,000."""
        return math.log(1 + self.articles / self.counts[term]) / math.log(1 + self.articles)


_frequencies = _Frequencies(version=None, articles=0, counts={})


def knowledge_changed() -> None:
    """Tell every process that the articles changed, so their word counts are counted again."""
    cache.set(_VERSION_KEY, uuid.uuid4().hex, timeout=None)


def _document_frequencies(*, terms: list[str]) -> _Frequencies:
    """The frequencies of `terms`, counted once per process until the articles change.

    Counting them for every search would cost more than the search itself.
    """
    global _frequencies
    articles = KnowledgeArticle.objects.filter(approved=True)
    version = cache.get(_VERSION_KEY, "")
    # Messages bring new words without end (names, numbers, typos): the counts start over
    # rather than grow for as long as the worker lives.
    if version != _frequencies.version or len(_frequencies.counts) > _COUNTS_KEPT_MAX:
        _frequencies = _Frequencies(version=version, articles=articles.count(), counts={})
    for term in terms:
        if term in _frequencies.counts:
            continue
        if not _frequencies.articles:  # a Page without a knowledge base pays nothing per word
            _frequencies.counts[term] = 0
            continue
        query = SearchQuery(
            term, config=settings.KNOWLEDGE_SEARCH_CONFIG, search_type="phrase" if " " in term else "plain"
        )
        _frequencies.counts[term] = articles.filter(search_vector=query).count()
    return _frequencies


def _synonyms_of(own: list[str]) -> list[str]:
    """The synonyms (KNOWLEDGE_SYNONYMS_FILE) of the words and phrases of a message."""
    text = f" {' '.join(_singular(word) for word in own)} "
    found = []
    for group in _synonym_groups(settings.KNOWLEDGE_SYNONYMS_FILE):
        if any(f" {term} " in text for term in group.keys()):
            found += group.values()
    return list(dict.fromkeys(found))


@functools.cache
def _synonym_groups(path: str) -> list[dict[str, str]]:
    """Each line of the file a group, its comma-separated terms by their singular form."""
    if not path:
        return []
    groups = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            terms = [" ".join(words(term)) for term in line.split(",")]
            groups.append({" ".join(map(_singular, term.split())): term for term in terms if term})
    return groups


def _singular(word: str) -> str:
    # Enough for matching a message against the synonym file ("vouchers", "voucher"); the
    # search itself stems with PostgreSQL's dictionaries.
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def _search_by_counting(*, terms: list[str], articles: QuerySet[KnowledgeArticle]) -> list[KnowledgeArticle]:
    """Development only (SQLite has no full-text search): each of the message's words that is a
    whole word of an article's title counts twice, of its text once.

    Words are compared in the singular, and short or common words ("the", "what") are left
    out: nearly every article holds them, as PostgreSQL's stop words.
    """
    wanted = {_singular(term) for term in terms if len(term) > 2 and term not in _COMMON_WORDS}
    scored = []
    for article in articles:
        title, body = ({_singular(word) for word in words(text)} for text in (article.title, article.body))
        score = sum(2 * (term in title) + (term in body) for term in wanted)
        if score:
            scored.append((-score, article.pk, article))
    return [article for _, _, article in sorted(scored)[: settings.KNOWLEDGE_TOP_K]]
