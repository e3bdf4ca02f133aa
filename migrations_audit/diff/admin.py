"""Admin for the diff stage's own bookkeeping models (the foundation's admin.py registers the rest).

Imported by migrations_audit/admin.py: `from .diff import admin as diff_admin  # noqa: F401`.
"""

from django.contrib import admin

from migrations_audit.models.diff import ComparisonTally, ExchangeComparison


@admin.register(ExchangeComparison)
class ExchangeComparisonAdmin(admin.ModelAdmin):
    list_display = ["exchange", "run", "version_from", "version_to", "source", "breaking", "unexplained"]
    list_filter = ["source", "version_to"]
    raw_id_fields = ["exchange", "run"]


@admin.register(ComparisonTally)
class ComparisonTallyAdmin(admin.ModelAdmin):
    list_display = ["upstream", "endpoint", "version_from", "version_to", "exchanges"]
    list_filter = ["upstream"]
