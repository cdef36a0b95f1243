"""The job queue's pages (django-rq's, in the admin) need django-rq's "Access admin page" permission:
being staff is not enough to read failed jobs' tracebacks and arguments or to empty a queue."""

import django_rq
import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.urls import reverse
from rq import SimpleWorker
from rq.registry import FailedJobRegistry

# A value for each argument of the django-rq URLs: what they point at does not matter to a
# refusal, which comes before the view looks.
SAMPLE_ARGUMENTS = {
    "queue_index": 0,
    "scheduler_index": 0,
    "connection_index": 0,
    "job_id": "some-job",
    "result_id": "some-result",
    "key": "some-worker",
    "scheduler_name": "some-scheduler",
    "cron_job_name": "some/cron-job",
    "object_id": "1",
}
# django-rq's JSON views, which also answer a bearer token: see test_staff_without_the_permission_gets_no_queue_statistics.
TOKEN_VIEWS = {"django_rq_home_json", "django_rq_metrics"}
# The pages a user with the permission opens, as they are linked from the dashboard.
PAGES = ["home", "jobs", "finished_jobs", "failed_jobs", "scheduled_jobs", "started_jobs", "deferred_jobs"]


def every_django_rq_url() -> list[str]:
    """Each named URL the admin serves under django-rq's dashboard: its pages and actions."""
    [dashboard] = [url for url in admin.site.get_urls() if str(url.pattern) == "django_rq/dashboard/"]
    urls = []
    for pattern in dashboard.url_patterns:
        # A name of None: the admin's redirect from an old change URL.
        if pattern.name is None or pattern.name in TOKEN_VIEWS:
            continue
        arguments = {name: SAMPLE_ARGUMENTS[name] for name in pattern.pattern.converters}
        urls.append(reverse(f"admin:{pattern.name}", kwargs=arguments))
    return sorted(set(urls))


@pytest.fixture
def failed_job(redis_conn):
    queue = django_rq.get_queue("default")
    job = queue.enqueue("math.sqrt", -1)
    SimpleWorker([queue], connection=queue.connection).work(burst=True)
    return job


def staff_client(client, *, permitted: bool):
    user = get_user_model().objects.create_user("agent", is_staff=True)
    if permitted:
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label="django_rq", codename="admin")
        )
    client.force_login(user)
    return client


def test_staff_without_the_permission_is_refused_every_page_and_action(client, db, failed_job):
    client = staff_client(client, permitted=False)
    urls = every_django_rq_url()
    assert len(urls) > 20  # the list really is django-rq's

    for url in urls:
        assert (url, client.get(url).status_code) == (url, 403)
        assert (url, client.post(url).status_code) == (url, 403)

    queue = django_rq.get_queue("default")
    client.post(reverse("admin:django_rq_delete_failed_jobs", args=[0]), {"post": "yes"})
    assert failed_job.id in FailedJobRegistry(queue=queue).get_job_ids()
    assert reverse("admin:django_rq_home") not in client.get(reverse("admin:index")).content.decode()


def test_staff_without_the_permission_gets_no_queue_statistics(client, db, redis_conn):
    client = staff_client(client, permitted=False)

    assert client.get(reverse("admin:django_rq_home_json")).status_code == 401
    assert client.get(reverse("admin:django_rq_metrics")).status_code == 401


def test_staff_with_the_permission_opens_the_pages_and_acts(client, db, failed_job):
    client = staff_client(client, permitted=True)

    assert reverse("admin:django_rq_home") in client.get(reverse("admin:index")).content.decode()
    for page in PAGES:
        url = reverse(f"admin:django_rq_{page}", args=[] if page == "home" else [0])
        assert (url, client.get(url).status_code) == (url, 200)
    detail = client.get(reverse("admin:django_rq_job_detail", args=[0, failed_job.id]))
    assert "math.sqrt" in detail.content.decode()  # a job's function and arguments
    assert client.get(reverse("admin:django_rq_home_json")).status_code == 200

    client.post(reverse("admin:django_rq_delete_failed_jobs", args=[0]), {"post": "yes"})
    assert FailedJobRegistry(queue=django_rq.get_queue("default")).get_job_ids() == []


@pytest.mark.parametrize(("page", "status"), [("change", 302), ("history", 302), ("delete", 403)])
def test_the_admins_object_pages_of_the_dashboard_answer_without_failing(client, db, page, status):
    # Its model has no table: asking for one of its rows used to fail with a 500. Now the admin
    # says there is no such object (back to its index), and nobody may delete one.
    client = staff_client(client, permitted=True)

    response = client.get(reverse(f"admin:django_rq_dashboard_{page}", args=[1]))

    assert response.status_code == status
    assert status == 403 or response["Location"] == reverse("admin:index")
