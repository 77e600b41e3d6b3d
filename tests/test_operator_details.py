"""Small things an operator notices: `apps list` shows times as the dashboard does (WIB), and
/metrics names its charset once."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import update

from app.extensions import db
from app.models import App


def test_apps_list_shows_jakarta_time_like_the_dashboard(app, cli):
    cli("apps", "create", "shop", "--name", "Shop")
    with app.app_context():
        db.session.execute(
            update(App).values(
                created_at=datetime(2026, 11, 20, 17, 30, tzinfo=UTC),
                last_used_at=datetime(2026, 11, 21, 23, 5, tzinfo=UTC),
            )
        )
        db.session.commit()
    listing = cli("apps", "list").output
    # 17:30 UTC is half past midnight the next day in Jakarta.
    assert "2026-11-21 00:30 WIB" in listing and "2026-11-22 06:05 WIB" in listing
    assert "17:30" not in listing


def test_metrics_content_type_names_the_charset_once(client):
    answer = client.get("/metrics")
    assert answer.status_code == 200
    content_type = answer.headers["Content-Type"]
    assert content_type.startswith("text/plain; version=")
    assert content_type.count("charset") == 1, content_type
