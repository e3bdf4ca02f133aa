"""What a page shows while a job waits for a worker."""

from django import template

from migrations_audit import selectors

register = template.Library()


@register.inclusion_tag("migrations_audit/workers_status.html")
def workers_status():
    """A warning when no worker reported in lately; nothing when one did."""
    return {"workers": selectors.workers_status()}
