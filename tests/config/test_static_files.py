import requests

from devtools.processes import start_web
from tests.processes import process_environment


def test_web_serves_the_admin_and_docs_assets_with_debug_off_and_no_collectstatic(tmp_path):
    web, base_url = start_web(process_environment(DEBUG="False"), tmp_path)
    try:
        css = requests.get(f"{base_url}/static/admin/css/base.css", timeout=10)
        swagger = requests.get(
            f"{base_url}/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui.css", timeout=10
        )
        docs = requests.get(f"{base_url}/api/docs/", timeout=10)
    finally:
        web.stop()
    assert css.status_code == 200 and "DJANGO Admin styles" in css.text
    assert swagger.status_code == 200
    assert docs.status_code == 200 and "/static/drf_spectacular_sidecar/" in docs.text
