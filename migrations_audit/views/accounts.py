"""Login with a limit on failed attempts, per username and per client address: ours and the admin's."""

import ipaddress

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.forms import AuthenticationForm
from django.core.cache import cache
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters

TOO_MANY_ATTEMPTS = "too_many_attempts"


def client_address(request) -> str:
    """The address the request came from. REMOTE_ADDR, unless the operator declared the header their
    reverse proxies set (TRUSTED_PROXY_HEADER): then the hop TRUSTED_PROXY_COUNT from its right end,
    the one the outermost trusted proxy saw. The entries left of it are the client's to write, so
    they are never read; a header missing that hop or holding no address falls back to REMOTE_ADDR."""
    remote = request.META.get("REMOTE_ADDR", "")
    if not settings.TRUSTED_PROXY_HEADER:
        return remote
    hops = [hop.strip() for hop in request.headers.get(settings.TRUSTED_PROXY_HEADER, "").split(",")]
    if len(hops) < settings.TRUSTED_PROXY_COUNT:
        return remote
    try:
        return str(ipaddress.ip_address(hops[-settings.TRUSTED_PROXY_COUNT]))
    except ValueError:
        return remote


def _failure_keys(request, username: str) -> list[str]:
    return [
        f"login-failures:user:{(username or '').strip().lower()}",
        f"login-failures:addr:{client_address(request)}",
    ]


class RateLimitedAuthenticationForm(AuthenticationForm):
    """Refuses any attempt, right password or not, once its username or address has failed
    LOGIN_FAILURE_LIMIT times in LOGIN_FAILURE_WINDOW seconds; counts each failure."""

    def clean(self):
        keys = _failure_keys(self.request, self.cleaned_data.get("username"))
        if any(cache.get(key, 0) >= settings.LOGIN_FAILURE_LIMIT for key in keys):
            raise ValidationError(
                "Too many failed attempts. Wait a few minutes, then try again.", code=TOO_MANY_ATTEMPTS
            )
        try:
            return super().clean()
        except ValidationError:
            for key in keys:
                cache.add(key, 0, settings.LOGIN_FAILURE_WINDOW)
                cache.incr(key)
            raise


class RateLimitedAdminAuthenticationForm(RateLimitedAuthenticationForm, AdminAuthenticationForm):
    pass


def _refused(form) -> bool:
    return form is not None and form.has_error(NON_FIELD_ERRORS, TOO_MANY_ATTEMPTS)


@method_decorator(sensitive_post_parameters("password"), name="dispatch")
class RateLimitedLoginView(auth_views.LoginView):
    redirect_authenticated_user = True
    authentication_form = RateLimitedAuthenticationForm

    def form_invalid(self, form):
        response = super().form_invalid(form)
        if _refused(form):
            response.status_code = 429
        return response


# The admin's own login, with the same limit; routed at admin/login/ so that a refusal is a 429 too.
admin.site.login_form = RateLimitedAdminAuthenticationForm


@login_not_required
@sensitive_post_parameters("password")
def admin_login(request, extra_context=None):
    response = admin.site.login(request, extra_context)
    if _refused(getattr(response, "context_data", {}).get("form")):
        response.status_code = 429
    return response
