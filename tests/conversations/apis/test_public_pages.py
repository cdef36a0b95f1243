def test_privacy_page_names_contact_email_and_what_is_stored(client, settings):
    settings.CONTACT_EMAIL = "dpo@shop.example"
    response = client.get("/privacy")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert 'href="mailto:dpo@shop.example"' in page
    for heading in ["What we store", "Why", "How long", "Deleting your data"]:
        assert f"<h2>{heading}</h2>" in page


def test_the_data_deletion_page_explains_both_ways_and_the_privacy_page_links_it(client, settings):
    settings.CONTACT_EMAIL = "dpo@shop.example"

    page = client.get("/data-deletion").content.decode()

    assert "<h2>In Messenger</h2>" in page and "<strong>Delete my data</strong>" in page
    assert 'href="mailto:dpo@shop.example?subject=Delete%20my%20data"' in page
    assert 'href="/data-deletion"' in client.get("/privacy").content.decode()


def test_the_privacy_pages_say_what_is_left_after_a_deletion_and_for_how_long(client):
    page = " ".join(client.get("/privacy").content.decode().split())

    assert "<h2>What is left after deletion</h2>" in page
    assert "for 30 days, is a fingerprint of your Messenger ID and of the id of each of your messages" in page
    assert "not the ids themselves and nothing you wrote" in page
    assert "technical logs name your Messenger ID and the ids of your messages, not what you wrote" in page
    assert "it leaves the queue as soon as it is delivered" in page
    deletion = " ".join(client.get("/data-deletion").content.decode().split())
    assert "For 30 days we keep a one-way fingerprint of your Messenger ID" in deletion
