"""The business's own facts: knowledge articles, importing them from Markdown, and finding the ones
a person's message needs.

Search is PostgreSQL's full-text search: each article keeps a weighted search vector (title
above body, stemmed with KNOWLEDGE_SEARCH_CONFIG) under a GIN index. People on Messenger share
few words with the article that answers them ("do u ship to norway??" against "Delivery
outside the EU"), so a query that needs every word finds almost nothing: an article matches
when it holds any of the message's words, the rank (which counts how many, and where) orders
them, and a floor drops the weakest. SQLite, for development, counts matching words instead.
"""
import functools
import logging
import operator
import re
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.postgres.search import SearchQuery, SearchRank, SearchVector
from django.db import DatabaseError, connection, transaction
from django.db.models import F

from conversations.models import KnowledgeArticle, Message, UnansweredQuestion
from conversations.prompts import section_tags

logger = logging.getLogger(__name__)

# Articles are short fact sheets: a longer text is never given whole (KNOWLEDGE_MAX_CHARS).
ARTICLE_MAX_CHARS = 20_000
_FILE_MAX_BYTES = 4 * ARTICLE_MAX_CHARS
_TITLE_MAX_CHARS = KnowledgeArticle._meta.get_field("title").max_length
_HEADING = re.compile(r"^#[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
_WORD = re.compile(r"[^\W_]+")
# A message this short ("and to norway?") is searched together with the person's previous one.
_SHORT_QUERY_WORDS = 4
_QUERY_MAX_WORDS = 40
# A message reads like a question worth an article when it asks or says this much.
_QUESTION_MIN_WORDS = 3


class ArticleFileError(ValueError):
    """A file that cannot be an article; `str()` says why in one line."""


@dataclass(frozen=True)
class ArticleText:
    title: str
    body: str


def knowledge_article_save(*, article: KnowledgeArticle) -> KnowledgeArticle:
    """Save `article` and bring its search vector up to date, in one transaction."""
    with transaction.atomic():
        article.save()
        if connection.vendor == "postgresql":
            config = settings.KNOWLEDGE_SEARCH_CONFIG
            KnowledgeArticle.objects.filter(pk=article.pk).update(
                search_vector=SearchVector("title", weight="A", config=config)
                + SearchVector("body", weight="B", config=config)
            )
    return article


def knowledge_file_import(*, path: Path, source: str, approved: bool = True) -> bool:
    """Import one Markdown file as the article for `source`; True when it was new, False when updated.

    Raises ArticleFileError, before anything is stored, when the file cannot be an article.
    An updated article keeps its approval, which staff may have changed in the admin.
    """
    text = article_text_read(path=path)
    article = KnowledgeArticle.objects.filter(source=source).first()
    created = article is None
    if created:
        article = KnowledgeArticle(source=source, approved=approved)
    article.title, article.body = text.title, text.body
    knowledge_article_save(article=article)
    return created


def article_text_read(*, path: Path) -> ArticleText:
    """The title (the first `# ` heading, else the file's name) and the text of a Markdown file."""
    try:
        size = path.stat().st_size
        if size > _FILE_MAX_BYTES:
            raise ArticleFileError(
                f"is {size / 1_000_000:.1f} MB; an article holds at most {ARTICLE_MAX_CHARS:,} characters, "
                "so split it into several files"
            )
        raw = path.read_bytes()
    except OSError as error:
        raise ArticleFileError(f"cannot be read ({error.strerror or error})") from error
    if b"\x00" in raw:
        raise ArticleFileError("is not a text file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ArticleFileError(f"is not UTF-8 text (byte {error.start})") from error
    return _article_text(text=text, name=path.stem)


def _article_text(*, text: str, name: str) -> ArticleText:
    if not text.strip():
        raise ArticleFileError("is empty")
    heading = _HEADING.search(text)
    if heading:
        title, body = heading.group(1).strip(), (text[: heading.start()] + text[heading.end() :]).strip()
    else:
        title, body = re.sub(r"[-_]+", " ", name).strip().capitalize(), text.strip()
    if not body:
        raise ArticleFileError("has no text besides its title")
    if len(body) > ARTICLE_MAX_CHARS:
        raise ArticleFileError(
            f"has {len(body):,} characters; an article holds at most {ARTICLE_MAX_CHARS:,}, so split it"
        )
    if len(title) > _TITLE_MAX_CHARS:
        raise ArticleFileError(f"has a title of {len(title)} characters; at most {_TITLE_MAX_CHARS}")
    tags = section_tags(f"{title}\n{body}")
    if tags:
        raise ArticleFileError(f"contains {tags[0]}, which is one of the prompt's section tags: remove it")
    return ArticleText(title=title, body=body)


def knowledge_relevant(*, query: list[Message], history: list[Message]) -> list[KnowledgeArticle]:
    """The approved articles that best match what the person asks now, best first; never raises.

    A short message is searched together with the person's message before it, which is often
    what it refers to. If the search fails, the reply goes out without knowledge.
    """
    text = " ".join(message.text for message in query)
    if len(_words(text)) < _SHORT_QUERY_WORDS:
        previous = next((m for m in reversed(history) if m.role == Message.Role.CLIENT and m.text), None)
        if previous is not None:
            text = f"{previous.text} {text}"
    try:
        with transaction.atomic():
            return knowledge_search(text=text)
    except DatabaseError:
        logger.exception("Knowledge search failed; answering without knowledge")
        return []


def knowledge_search(*, text: str) -> list[KnowledgeArticle]:
    """The approved articles holding any of `text`'s words, best first, at most KNOWLEDGE_TOP_K."""
    words = _words(text)[:_QUERY_MAX_WORDS]
    top_k = settings.KNOWLEDGE_TOP_K
    if not words or top_k < 1:
        return []
    if connection.vendor == "postgresql":
        return _search_postgresql(words=words, top_k=top_k)
    return _search_by_counting(words=words, top_k=top_k)


def _search_postgresql(*, words: list[str], top_k: int) -> list[KnowledgeArticle]:
    config = settings.KNOWLEDGE_SEARCH_CONFIG
    # plainto_tsquery per word: stemmed, stop words dropped, no tsquery syntax to escape.
    query = functools.reduce(operator.or_, (SearchQuery(word, config=config) for word in words))
    return list(
        KnowledgeArticle.objects.filter(approved=True, search_vector=query)
        .annotate(rank=SearchRank(F("search_vector"), query))
        .filter(rank__gte=settings.KNOWLEDGE_MIN_RANK)
        .order_by("-rank", "id")[:top_k]
    )


def _search_by_counting(*, words: list[str], top_k: int) -> list[KnowledgeArticle]:
    """Development only: each word found in the title counts twice, in the body once."""
    words = [word for word in words if len(word) > 2]
    scored = []
    for article in KnowledgeArticle.objects.filter(approved=True):
        title, body = article.title.lower(), article.body.lower()
        score = sum(2 * (word in title) + (word in body) for word in words)
        if score:
            scored.append((-score, article.pk, article))
    return [article for _, _, article in sorted(scored)[:top_k]]


def knowledge_reply_record(*, reply: Message, articles: list[KnowledgeArticle], answered: list[Message]) -> None:
    """Record which articles `reply` was given; with none, what it answered is an unanswered question.

    Only messages that read like a question are listed (a question mark, or a few words):
    "hi" and "thanks!" answered without an article are not a gap in the knowledge base.
    """
    if articles:
        reply.knowledge_articles.set(articles)
        return
    text = "\n".join(message.text.strip() for message in answered if message.text.strip())
    if "?" in text or len(_words(text)) >= _QUESTION_MIN_WORDS:
        UnansweredQuestion.objects.create(message=answered[-1], text=text, asked_at=answered[-1].created_at)


def _words(text: str) -> list[str]:
    return list(dict.fromkeys(_WORD.findall(text.lower())))


def unanswered_question_resolve(*, question: UnansweredQuestion, article: KnowledgeArticle) -> None:
    """Link the question to the article staff wrote from it: the list then shows it answered."""
    UnansweredQuestion.objects.filter(pk=question.pk).update(article=article)
