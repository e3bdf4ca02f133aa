from migrations_audit import selectors


def navigation(request):
    """The upstream the navigation links to when a page is not about one (the user's first)."""
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    slug = selectors.upstreams_for_user(user=request.user).values_list("slug", flat=True).first()
    return {"nav_upstream_slug": slug}
