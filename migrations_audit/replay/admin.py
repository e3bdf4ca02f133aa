"""Admin of the replay stage's editable data: named variants per upstream."""

from django.contrib import admin

from migrations_audit.models import ReplayVariant

from .forms import ReplayVariantForm


@admin.register(ReplayVariant)
class ReplayVariantAdmin(admin.ModelAdmin):
    form = ReplayVariantForm
    list_display = ("name", "upstream", "version", "model_map", "key_style")
    list_filter = ("upstream",)
    search_fields = ("name", "version", "model_map")
