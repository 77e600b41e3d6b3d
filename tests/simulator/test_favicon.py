"""The simulator's pages have an icon, so browsers get no 404 asking for /favicon.ico."""


def test_favicon_is_served_and_linked_from_every_page(client):
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.mimetype == "image/svg+xml"
    assert icon.get_data(as_text=True).startswith("<svg")
    page = client.get("/_sim/")
    assert page.status_code == 200
    assert '<link rel="icon" href="/favicon.ico" type="image/svg+xml">' in page.get_data(
        as_text=True
    )
