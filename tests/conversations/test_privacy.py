def test_privacy_page_names_contact_email_and_what_is_stored(client, settings):
    settings.CONTACT_EMAIL = "dpo@shop.example"
    response = client.get("/privacy")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert 'href="mailto:dpo@shop.example"' in page
    for heading in ["What we store", "Why", "How long", "Deleting your data"]:
        assert f"<h2>{heading}</h2>" in page
