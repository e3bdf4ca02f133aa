from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from migrations_audit.views.accounts import RateLimitedLoginView, admin_login

urlpatterns = [
    path("accounts/login/", RateLimitedLoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/login/", admin_login),
    path("admin/", admin.site.urls),
    path("", include("migrations_audit.urls")),
]
