"""The demo opens on a migration whose board is already derived from the demo traffic."""

import pytest

from migrations_audit.demo import demo_seed
from migrations_audit.models import Migration, Status


@pytest.mark.django_db
def test_demo_seed_creates_a_migration_with_every_client_on_the_board(
    tasks_eager, django_capture_on_commit_callbacks
):
    # What a worker does once the seed commits: the request check, then the board's refresh.
    with django_capture_on_commit_callbacks(execute=True):
        demo_seed()
    migration = Migration.objects.get()
    states = {state.client.display_name: state for state in migration.states.select_related("client")}
    assert len(states) == migration.upstream.clients.count() >= 5
    assert states["checkout-service"].status == Status.AFFECTED
    assert states["search-indexer"].evidence["accidental"]
    demo_seed()
    assert Migration.objects.count() == 1, "seeding again changes nothing"
