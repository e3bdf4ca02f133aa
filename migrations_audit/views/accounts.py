"""Login with a limit on failed attempts, per username and per client address."""

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.core.cache import cache
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters


def _failure_keys(request) -> list[str]:
    username = (request.POST.get("username") or "").strip().lower()
    address = request.META.get("REMOTE_ADDR", "")
    return [f"login-failures:user:{username}", f"login-failures:addr:{address}"]


@method_decorator(sensitive_post_parameters("password"), name="dispatch")
class RateLimitedLoginView(auth_views.LoginView):
    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        if any(cache.get(key, 0) >= settings.LOGIN_FAILURE_LIMIT for key in _failure_keys(request)):
            form = self.get_form()
            form.add_error(None, "Too many failed attempts. Wait a few minutes, then try again.")
            response = self.render_to_response(self.get_context_data(form=form))
            response.status_code = 429
            return response
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form):
        for key in _failure_keys(self.request):
            cache.add(key, 0, settings.LOGIN_FAILURE_WINDOW)
            cache.incr(key)
        return super().form_invalid(form)
