from django.urls import path

from migrations_audit.views import acknowledgements, capture, pages, replay, reports, rules, tracking

app_name = "migrations_audit"

urlpatterns = [
    path("", pages.home, name="home"),
    path("u/<slug:slug>/", pages.overview, name="overview"),
    path("u/<slug:slug>/traffic/", pages.traffic, name="traffic"),
    path("u/<slug:slug>/traffic/<int:exchange_id>/", pages.exchange_detail, name="exchange"),
    path("u/<slug:slug>/traffic/<int:exchange_id>/body/", pages.exchange_body, name="exchange_body"),
    path("u/<slug:slug>/runs/", pages.runs, name="runs"),
    path("u/<slug:slug>/runs/new/", replay.run_start, name="run_start"),
    path("u/<slug:slug>/variants/", replay.variant_save, name="variant_save"),
    path("u/<slug:slug>/runs/<int:run_id>/", replay.run_detail, name="run"),
    path("u/<slug:slug>/runs/<int:run_id>/cancel/", replay.run_cancel, name="run_cancel"),
    path("u/<slug:slug>/runs/<int:run_id>/resume/", replay.run_resume, name="run_resume"),
    path("api/v1/runs", replay.api_runs, name="api_runs"),
    path("api/v1/runs/<int:run_id>", replay.api_run, name="api_run"),
    path("u/<slug:slug>/differences/", pages.differences, name="differences"),
    path(
        "u/<slug:slug>/differences/<int:signature_id>/", pages.difference_examples, name="difference_examples"
    ),
    path("u/<slug:slug>/rules/", rules.rules, name="rules"),
    path("u/<slug:slug>/clients/", tracking.clients, name="clients"),
    path("u/<slug:slug>/clients/<int:client_id>/", tracking.client_detail, name="client"),
    path("u/<slug:slug>/clients/<int:client_id>/claim/", tracking.client_claim, name="client_claim"),
    path("u/<slug:slug>/migrations/", tracking.migrations, name="migrations"),
    path("u/<slug:slug>/migrations/<int:migration_id>/", tracking.migration_detail, name="migration"),
    path(
        "u/<slug:slug>/migrations/<int:migration_id>/refresh/",
        tracking.migration_refresh,
        name="migration_refresh",
    ),
    path(
        "u/<slug:slug>/migrations/<int:migration_id>/close/", tracking.migration_close, name="migration_close"
    ),
    path(
        "u/<slug:slug>/migrations/<int:migration_id>/clients/<int:client_id>/",
        tracking.migration_client,
        name="migration_client",
    ),
    path(
        "u/<slug:slug>/migrations/<int:migration_id>/clients/<int:client_id>/override/",
        tracking.migration_client_override,
        name="migration_client_override",
    ),
    path(
        "u/<slug:slug>/migrations/<int:migration_id>/clients/<int:client_id>/note/",
        tracking.migration_client_note,
        name="migration_client_note",
    ),
    path("api/v1/migrations/<int:migration_id>", tracking.api_migration, name="api_migration"),
    path("reports/", reports.reports, name="reports"),
    path("reports/new/", reports.report_edit, name="report_new"),
    path("reports/<int:definition_id>/", reports.report_detail, name="report"),
    path("reports/<int:definition_id>/edit/", reports.report_edit, name="report_edit"),
    path("reports/<int:definition_id>/run/", reports.report_run_now, name="report_run"),
    path(
        "reports/<int:definition_id>/test-delivery/",
        reports.report_test_delivery,
        name="report_test_delivery",
    ),
    path("reports/schedule-preview/", reports.report_schedule_preview, name="report_schedule_preview"),
    path("reports/snapshots/<int:snapshot_id>/", reports.report_snapshot, name="report_snapshot"),
    path("reports/snapshots/<int:snapshot_id>.<str:fmt>", reports.report_snapshot, name="report_download"),
    path("settings/", pages.settings_page, name="settings"),
    path("settings/upstreams/new/", pages.upstream_edit, name="upstream_new"),
    path("settings/upstreams/<slug:slug>/", pages.upstream_edit, name="upstream_edit"),
    path("settings/upstreams/<slug:slug>/delete/", pages.upstream_delete, name="upstream_delete"),
    path("healthz", pages.health, name="health"),
    path("favicon.ico", pages.favicon, name="favicon"),
    # Capture
    path("api/v1/upstreams/<slug:slug>/exchanges", capture.api_ingest, name="api_ingest"),
    path("u/<slug:slug>/import/", capture.har_imports, name="har_imports"),
    path("u/<slug:slug>/import/<int:job_id>/", capture.har_import_detail, name="har_import"),
    path("settings/teams/<slug:team_slug>/tokens/", capture.token_create, name="token_create"),
    path(
        "settings/teams/<slug:team_slug>/tokens/<int:token_id>/revoke/",
        capture.token_revoke,
        name="token_revoke",
    ),
    # Acknowledgements (the release gate)
    path("u/<slug:slug>/acknowledgements/", acknowledgements.acknowledgements, name="acknowledgements"),
    path(
        "u/<slug:slug>/acknowledgements/new/",
        acknowledgements.acknowledgement_create,
        name="acknowledgement_new",
    ),
    path(
        "u/<slug:slug>/acknowledgements/<int:acknowledgement_id>/revoke/",
        acknowledgements.acknowledgement_revoke,
        name="acknowledgement_revoke",
    ),
    path(
        "api/v1/upstreams/<slug:slug>/acknowledgements",
        acknowledgements.api_acknowledgements,
        name="api_acknowledgements",
    ),
    path(
        "api/v1/upstreams/<slug:slug>/acknowledgements/<int:acknowledgement_id>/revoke",
        acknowledgements.api_acknowledgement_revoke,
        name="api_acknowledgement_revoke",
    ),
]
