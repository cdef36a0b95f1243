"""The business's own facts: knowledge articles, importing them from Markdown, and what each reply
was given (or, with nothing, the question it leaves for staff). Finding them is
conversations.knowledge.search.
"""

import errno
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.postgres.search import SearchVector
from django.db import connection, transaction
from django.db.models import Q, QuerySet, Subquery
from django.db.models.functions import Lower, Trim

from conversations.knowledge.search import knowledge_changed, words
from conversations.models import KnowledgeArticle, Message, UnansweredQuestion
from conversations.prompts import section_tags

# Articles are short fact sheets: a longer text is never given whole (KNOWLEDGE_MAX_CHARS).
ARTICLE_MAX_CHARS = 20_000
_FILE_MAX_BYTES = 4 * ARTICLE_MAX_CHARS
_TITLE_MAX_CHARS = KnowledgeArticle._meta.get_field("title").max_length
_HEADING = re.compile(r"^#[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
# A message reads like a question worth an article when it asks or says this much.
_QUESTION_MIN_WORDS = 3
# Why a linked file or folder is not imported: a link can lead out of the folder (to a .env).
LINK_REFUSED = "is a symbolic link; links are not followed"


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
        transaction.on_commit(knowledge_changed)
    return article


def knowledge_articles_delete(*, articles: QuerySet[KnowledgeArticle]) -> None:
    articles.delete()
    knowledge_changed()


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
    """The title (the first `# ` heading, else the file's name) and the text of a Markdown file.

    Only a regular file is read, never through a symbolic link (one in a folder of articles
    could point at the service's .env), and never more than the size cap: a FIFO would block,
    a device or a /proc file could be endless.
    """
    try:
        # O_NONBLOCK: opening a FIFO waits for a writer otherwise, before fstat can refuse it.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise ArticleFileError(LINK_REFUSED) from error
        raise ArticleFileError(f"cannot be read ({error.strerror or error})") from error
    with os.fdopen(fd, "rb") as file:
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ArticleFileError("is not a regular file")
            raw = file.read(_FILE_MAX_BYTES + 1)
        except OSError as error:
            raise ArticleFileError(f"cannot be read ({error.strerror or error})") from error
    if len(raw) > _FILE_MAX_BYTES:
        raise ArticleFileError(
            f"is over {_FILE_MAX_BYTES // 1000} kB; an article holds at most {ARTICLE_MAX_CHARS:,} "
            "characters, so split it into several files"
        )
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


def knowledge_reply_record(
    *, reply: Message, articles: list[KnowledgeArticle], answered: list[Message]
) -> None:
    """Record which articles `reply` was given; with none, what it answered is an unanswered question.

    Only messages that read like a question are listed (a question mark, or a few words):
    "hi" and "thanks!" answered without an article are not a gap in the knowledge base.
    """
    if articles:
        reply.knowledge_articles.set(articles)
        return
    text = "\n".join(message.text.strip() for message in answered if message.text.strip())
    if "?" in text or len(words(text)) >= _QUESTION_MIN_WORDS:
        UnansweredQuestion.objects.create(message=answered[-1], text=text, asked_at=answered[-1].created_at)


def unanswered_question_resolve(*, question: UnansweredQuestion, article: KnowledgeArticle) -> None:
    """Link the question to the article staff wrote from it, and every unanswered question with
    the same words (whatever their case and outer spaces, as the dashboard groups them): the
    lists then show them answered."""
    same_words = Lower(Trim("text"))
    UnansweredQuestion.objects.annotate(key=same_words).filter(
        Q(pk=question.pk)
        | Q(
            article__isnull=True,
            key=Subquery(UnansweredQuestion.objects.filter(pk=question.pk).values(key=same_words)),
        )
    ).update(article=article)
