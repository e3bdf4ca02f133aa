"""Signatures acknowledged in the admin before acknowledgements existed keep counting after the
migration, as acknowledgements with an audit trail."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("migrations_audit", "0005_upstream_guard")]
AFTER = [("migrations_audit", "0006_acknowledgements")]


@pytest.mark.django_db(transaction=True)
def test_admin_acknowledgements_become_acknowledgements():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    apps = executor.loader.project_state(BEFORE).apps
    team = apps.get_model("migrations_audit", "Team").objects.create(name="T", slug="t")
    upstream = apps.get_model("migrations_audit", "Upstream").objects.create(
        team=team, name="U", slug="u", base_url="http://127.0.0.1:9"
    )
    signatures = apps.get_model("migrations_audit", "DifferenceSignature")
    for key, acknowledged in (("a" * 64, True), ("b" * 64, False)):
        signatures.objects.create(
            upstream=upstream, signature=key, version_from="1", version_to="2", endpoint="POST /v1/messages",
            kind="field_removed", path="/x", classification="breaking", acknowledged=acknowledged,
        )  # fmt: skip
    executor = MigrationExecutor(connection)
    executor.migrate(AFTER)
    apps = executor.loader.project_state(AFTER).apps
    acknowledgements = apps.get_model("migrations_audit", "Acknowledgement").objects.all()
    assert [(a.signature, a.state, a.finding) for a in acknowledgements] == [
        ("a" * 64, "active", "difference")
    ]
    events = apps.get_model("migrations_audit", "AcknowledgementEvent").objects.all()
    assert [(e.action, e.actor_name, e.via) for e in events] == [("created", "system", "migration")]
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
