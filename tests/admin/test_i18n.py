"""English and Bahasa Indonesia: the switch, the browser default, a complete catalog."""

from __future__ import annotations

import io
from pathlib import Path

from admin.dashboard import token_for
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

REPO = Path(__file__).resolve().parents[2]
CATALOG = REPO / "translations" / "id" / "LC_MESSAGES"


def test_switching_language_is_remembered(admin_client):
    token = token_for(admin_client, "/admin/apps")
    resp = admin_client.post(
        "/admin/language", data={"csrf_token": token, "lang": "id", "next": "/admin/apps"}
    )
    assert resp.status_code == 302 and resp.location == "/admin/apps"
    html = admin_client.get("/admin/transactions").get_data(as_text=True)
    assert 'lang="id"' in html and "Transaksi" in html and "Ekspor CSV" in html
    token = token_for(admin_client, "/admin/")
    admin_client.post("/admin/language", data={"csrf_token": token, "lang": "en"})
    assert "Export CSV" in admin_client.get("/admin/transactions").get_data(as_text=True)


def test_the_switch_works_before_login_and_survives_it(client, admin_user):
    from admin.dashboard import PASSWORD

    token = token_for(client)
    client.post("/admin/language", data={"csrf_token": token, "lang": "id", "next": "/admin/login"})
    page = client.get("/admin/login").get_data(as_text=True)
    assert "Masuk ke dasbor" in page
    token = token_for(client)
    wrong = client.post(
        "/admin/login", data={"csrf_token": token, "username": "root", "password": "x" * 12}
    )
    assert "Nama pengguna atau kata sandi salah." in wrong.get_data(as_text=True)
    token = token_for(client)
    client.post(
        "/admin/login", data={"csrf_token": token, "username": "root", "password": PASSWORD}
    )
    assert "Ringkasan" in client.get("/admin/").get_data(as_text=True)


def test_browser_language_is_the_default(client, admin_user):
    page = client.get("/admin/login", headers={"Accept-Language": "id-ID,id;q=0.9,en;q=0.5"})
    assert 'lang="id"' in page.get_data(as_text=True)
    page = client.get("/admin/login", headers={"Accept-Language": "fr"})
    assert 'lang="en"' in page.get_data(as_text=True)


def test_unknown_language_is_ignored(admin_client):
    token = token_for(admin_client, "/admin/")
    admin_client.post("/admin/language", data={"csrf_token": token, "lang": "xx"})
    assert 'lang="en"' in admin_client.get("/admin/").get_data(as_text=True)


def _source_messages() -> set[str]:
    method_map = [
        ("app/admin/**.py", "python"),
        ("templates/base.html", "jinja2"),
        ("templates/admin/**.html", "jinja2"),
    ]
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "_l": None, "lazy_gettext": None}
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(REPO), method_map, keywords=keywords
    ):
        found.add(message if isinstance(message, str) else message[0])
    return found


def test_every_text_of_the_dashboard_has_an_indonesian_translation():
    with open(CATALOG / "messages.po", "rb") as handle:
        catalog = read_po(handle)
    translated = {
        (m.id if isinstance(m.id, str) else m.id[0])
        for m in catalog
        if m.id and m.string and (m.string if isinstance(m.string, str) else all(m.string))
    }
    missing = _source_messages() - translated
    assert not missing, f"add these to translations/id/LC_MESSAGES/messages.po: {sorted(missing)}"


def _pairs(catalog) -> dict:
    return {
        (m.id if isinstance(m.id, str) else tuple(m.id)): (
            m.string if isinstance(m.string, str) else tuple(m.string)
        )
        for m in catalog
        if m.id
    }


def test_the_compiled_catalog_matches_the_po_file():
    with open(CATALOG / "messages.po", "rb") as handle:
        po = _pairs(read_po(handle))
    mo = _pairs(read_mo(io.BytesIO((CATALOG / "messages.mo").read_bytes())))
    assert mo == po, "run: pybabel compile -d translations"
