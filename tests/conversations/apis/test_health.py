import pytest
import requests

from devtools.processes import free_port, start_web
from tests.processes import process_environment


def test_health_ok(client, db, redis_conn):
    response = client.get("/api/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize(
    ("component", "override"),
    [
        ("redis", lambda port: {"REDIS_URL": f"redis://127.0.0.1:{port}/0"}),
        ("database", lambda port: {"DATABASE_URL": f"postgres://postgres@127.0.0.1:{port}/messenger"}),
    ],
)
def test_health_reports_a_down_component_with_503(component, override, tmp_path, db):
    closed_port = free_port()
    web, base_url = start_web(process_environment(**override(closed_port)), tmp_path)
    try:
        response = requests.get(f"{base_url}/api/health", timeout=15)
    finally:
        web.stop()
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert list(body["failing"]) == [component]
