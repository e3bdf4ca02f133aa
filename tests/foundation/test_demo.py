"""The demo data of `make run`: created once, unchanged by a second run."""

from django.contrib.auth import get_user_model

from migrations_audit.demo import DEMO_USERNAME, demo_seed
from migrations_audit.models import Exchange, Migration, ReplayResult, ReplayRun, RequestFinding, Upstream


def counts():
    return [
        model.objects.count()
        for model in (
            Upstream,
            Exchange,
            RequestFinding,
            Migration,
            ReplayRun,
            ReplayResult,
            get_user_model(),
        )
    ]


def test_demo_seed_is_idempotent(db, tasks_eager, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):  # the request check queued after the commit
        demo_seed()
    first = counts()
    with django_capture_on_commit_callbacks(execute=True):
        demo_seed()
    assert counts() == first
    assert first[1] > 100 and first[2] > 0 and first[4] == 2
    assert get_user_model().objects.get(username=DEMO_USERNAME).check_password("demo-password")
