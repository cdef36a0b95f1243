"""conversations.knowledge on PostgreSQL: the right article for the way people write, nothing for
nonsense, and a reply that records what it was given or what the knowledge base lacks."""

import logging

import pytest
from django.test import TestCase

from conversations.knowledge import search
from conversations.knowledge.search import knowledge_relevant, knowledge_search
from conversations.knowledge.services import knowledge_article_save
from conversations.models import KnowledgeArticle, Message, UnansweredQuestion
from conversations.prompts import NO_KNOWLEDGE
from conversations.services.conversations import conversation_get_or_create
from conversations.services.replies import reply_produce

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

ARTICLES = {
    "delivery": (
        "Delivery outside the EU",
        "We ship to Norway, Switzerland, the UK and the US. Shipping costs 25 EUR and takes 5-8 "
        "working days. Customs duties are paid by the buyer on arrival.",
    ),
    "returns": (
        "Returns and refunds",
        "You can send an item back within 30 days. Once it reaches us we refund your money to the "
        "card you paid with within 5 business days.",
    ),
    "hours": (
        "Showroom",
        "Our showroom in Aarhus is open Monday to Friday 10-18 and Saturday 10-14. Closed on Sundays "
        "and public holidays.",
    ),
    "payment": (
        "Paying for your order",
        "We accept Visa, Mastercard, MobilePay and Klarna (pay in 30 days).",
    ),
}


@pytest.fixture
def articles(redis_conn, django_capture_on_commit_callbacks) -> dict[str, KnowledgeArticle]:
    # Committed as the admin or the import command would: searches then count their words anew.
    with django_capture_on_commit_callbacks(execute=True):
        return {
            key: knowledge_article_save(article=KnowledgeArticle(title=title, body=body))
            for key, (title, body) in ARTICLES.items()
        }


def save(article: KnowledgeArticle) -> KnowledgeArticle:
    with TestCase.captureOnCommitCallbacks(execute=True):
        return knowledge_article_save(article=article)


def found(text: str) -> list[str]:
    return [article.title for article in knowledge_search(text=text)]


@pytest.mark.parametrize(
    "question, best",
    [
        ("do u ship to norway??", "delivery"),
        ("hw long till i get my money back", "returns"),
        ("r u open on saturday", "hours"),
        ("can i pay w klarna", "payment"),
        ("Returned the blanket last week, when is the refund coming?", "returns"),
    ],
)
def test_the_article_that_answers_comes_first(articles, question, best):
    assert found(question)[0] == articles[best].title


def test_nonsense_and_chit_chat_find_nothing(articles):
    assert found("asdfgh qwerty") == []
    assert found("thanks!!") == []
    assert found("") == []


def test_unapproved_articles_are_never_given(articles):
    articles["delivery"].approved = False
    save(articles["delivery"])

    assert "Delivery outside the EU" not in found("do u ship to norway??")


def test_at_most_top_k_articles_best_first(articles, settings):
    settings.KNOWLEDGE_TOP_K = 1
    assert found("norway shipping refund saturday klarna") != [] and len(found("norway refund saturday")) == 1


def test_the_rank_floor_drops_weak_matches(articles, settings):
    settings.KNOWLEDGE_MIN_RANK = 10.0
    assert found("do u ship to norway??") == []


def test_an_edited_article_is_found_by_its_new_words(articles):
    articles["hours"].body += " In December we also open on Sundays."
    save(articles["hours"])

    assert found("december sundays")[0] == "Showroom"


def test_a_short_follow_up_is_searched_with_the_message_before_it(articles):
    conversation = conversation_get_or_create(page_id="1", external_id="2")
    earlier = Message(conversation=conversation, role=Message.Role.CLIENT, text="do you ship to norway")
    reply = Message(conversation=conversation, role=Message.Role.AI, text="Yes!")
    follow_up = Message(conversation=conversation, role=Message.Role.CLIENT, text="what about that?")

    assert knowledge_relevant(query=[follow_up], history=[]) == []
    assert knowledge_relevant(query=[follow_up], history=[earlier, reply])[0] == articles["delivery"]


def test_a_failing_search_gives_no_knowledge_and_logs_why(articles, settings, caplog):
    settings.KNOWLEDGE_SEARCH_CONFIG = "no_such_language"
    question = Message(role=Message.Role.CLIENT, text="do u ship to norway??")

    with caplog.at_level(logging.ERROR, logger="conversations.knowledge.search"):
        assert knowledge_relevant(query=[question], history=[]) == []

    assert "Knowledge search failed; answering without knowledge" in caplog.text


def development_search(text: str) -> list[str]:
    """What SQLite (make run's default) finds instead of PostgreSQL's full-text search: plain
    Python over the articles, so it is tried here on PostgreSQL all the same."""
    approved = KnowledgeArticle.objects.filter(approved=True)
    return [
        article.title for article in search._search_by_counting(terms=search.words(text), articles=approved)
    ]


def test_the_development_search_counts_matching_words(articles):
    assert development_search("do u ship to norway??")[0] == "Delivery outside the EU"
    assert development_search("asdfgh") == []


def test_the_development_search_matches_whole_words_not_fragments_or_common_words(articles):
    # Once every article with "the" in it, as most have.
    assert development_search("what is the capital of france") == []
    assert development_search("hip hop") == []  # once "shipping"
    assert development_search("any refunds?") == ["Returns and refunds"]  # "refunds" or "refund"


# --- what a reply records --------------------------------------------------------------------


@pytest.fixture
def conversation(graph, groq, redis_conn):
    return conversation_get_or_create(page_id="104728561934527", external_id="7395028461739201")


def answer(conversation, *texts: str) -> Message:
    waiting = [
        Message.objects.create(
            conversation=conversation, role=Message.Role.CLIENT, text=text, status="received"
        )
        for text in texts
    ]
    reply_produce(message_id=waiting[-1].pk, final_attempt=True)
    return conversation.messages.get(role=Message.Role.AI)


def test_a_reply_is_given_the_matching_articles_and_records_them(articles, conversation, groq):
    reply = answer(conversation, "do u ship to norway??")

    assert list(reply.knowledge_articles.all()) == [articles["delivery"]]
    [call] = groq.calls()
    assert "<KNOWLEDGE>\n## Delivery outside the EU\nWe ship to Norway" in call["prompt"]
    assert not UnansweredQuestion.objects.exists()


def test_a_question_answered_without_knowledge_is_listed_for_staff(articles, conversation, groq):
    reply = answer(conversation, "hi there", "do you have a loyalty program?")

    assert not reply.knowledge_articles.exists()
    assert f"<KNOWLEDGE>\n{NO_KNOWLEDGE}\n</KNOWLEDGE>" in groq.calls()[0]["prompt"]
    question = UnansweredQuestion.objects.get()
    assert question.text == "hi there\ndo you have a loyalty program?"
    assert question.message == reply.reply_to and question.article is None


def test_a_greeting_answered_without_knowledge_is_no_question(articles, conversation):
    answer(conversation, "hi!!")

    assert not UnansweredQuestion.objects.exists()


def test_words_customers_use_for_the_same_thing_find_the_article(articles, settings, tmp_path):
    save(KnowledgeArticle(title="Gift cards", body="A gift card is valid for 3 years."))
    synonyms = tmp_path / "synonyms.txt"
    synonyms.write_text("# shop words\ngift card, voucher, gift certificate\n")
    settings.KNOWLEDGE_SYNONYMS_FILE = str(synonyms)
    assert found("do u sell vouchers i can give my mum")[0] == "Gift cards"

    settings.KNOWLEDGE_SYNONYMS_FILE = ""
    assert "Gift cards" not in found("do u sell vouchers i can give my mum")


def test_a_rare_word_counts_more_than_a_common_one(articles):
    # "order" is in three articles, "klarna" in one: the one that answers comes first.
    for title in ("Changing an order", "Tracking an order", "Order confirmation"):
        save(KnowledgeArticle(title=title, body=f"{title}: about your order."))

    assert found("can i order with klarna")[0] == "Paying for your order"


def test_without_a_knowledge_base_a_search_costs_no_query_per_word(django_assert_max_num_queries):
    search.knowledge_changed()
    with django_assert_max_num_queries(1):  # the articles' count, once per process and change
        assert knowledge_search(text="hi there, how long does delivery to norway take for an order?") == []
