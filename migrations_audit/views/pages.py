"""The dashboard's pages. Thin: they pick the upstream the user may see and call selectors."""

from django.contrib.auth.decorators import login_not_required
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from migrations_audit import selectors
from migrations_audit.models import Exchange, ReplayRun


def home(request):
    upstreams = list(selectors.upstreams_for_user(user=request.user))
    if len(upstreams) == 1:
        return redirect("migrations_audit:overview", slug=upstreams[0].slug)
    return render(request, "migrations_audit/home.html", {"upstreams": upstreams})


def overview(request, slug):
    upstream = selectors.upstream_for_user(user=request.user, slug=slug)
    context = {
        "upstream": upstream,
        "exchange_count": upstream.exchanges.count(),
        "client_count": upstream.clients.count(),
        "latest_runs": upstream.runs.all()[:5],
    }
    return render(request, "migrations_audit/overview.html", context)


def traffic(request, slug):
    upstream = selectors.upstream_for_user(user=request.user, slug=slug)
    exchanges = (
        Exchange.objects.filter(upstream=upstream)
        .select_related("client")
        .defer("request_body", "response_body", "response_events")
    )
    page = Paginator(exchanges, 50).get_page(request.GET.get("page"))
    return render(request, "migrations_audit/traffic.html", {"upstream": upstream, "page": page})


def exchange_detail(request, slug, exchange_id):
    upstream = selectors.upstream_for_user(user=request.user, slug=slug)
    exchange = get_object_or_404(Exchange, upstream=upstream, pk=exchange_id)
    return render(request, "migrations_audit/exchange.html", {"upstream": upstream, "exchange": exchange})


def runs(request, slug):
    upstream = selectors.upstream_for_user(user=request.user, slug=slug)
    page = Paginator(ReplayRun.objects.filter(upstream=upstream), 25).get_page(request.GET.get("page"))
    return render(request, "migrations_audit/runs.html", {"upstream": upstream, "page": page})


def run_detail(request, slug, run_id):
    upstream = selectors.upstream_for_user(user=request.user, slug=slug)
    run = get_object_or_404(ReplayRun, upstream=upstream, pk=run_id)
    return render(request, "migrations_audit/run.html", {"upstream": upstream, "run": run})


def differences(request, slug):
    upstream = selectors.upstream_for_user(user=request.user, slug=slug)
    signatures = upstream.signatures.select_related("rule").order_by("rule", "-count")
    return render(
        request, "migrations_audit/differences.html", {"upstream": upstream, "signatures": signatures}
    )


def reports(request):
    return render(request, "migrations_audit/reports.html", {})


def settings_page(request):
    teams = selectors.teams_for_user(user=request.user).prefetch_related("upstreams", "api_tokens")
    return render(request, "migrations_audit/settings.html", {"teams": teams})


@login_not_required
def health(request):
    return HttpResponse("ok", content_type="text/plain")
