"""The dashboard's pages. Thin: they pick the upstream the user may see and call selectors."""

from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.templatetags.static import static
from django.urls import reverse

from migrations_audit import selectors, services
from migrations_audit.content_encoding import body_decode
from migrations_audit.diff import selectors as diff_selectors
from migrations_audit.diff.forms import DifferenceFilterForm
from migrations_audit.forms import UpstreamForm
from migrations_audit.models import Difference, DifferenceSignature, Exchange, ReplayResult, ReplayRun
from migrations_audit.presenters import body_prepare, header_value, stream_summarise, timeline_align
from migrations_audit.replay.executor import replay_request
from migrations_audit.replay.variants import run_variant
from migrations_audit.reports.acknowledgements import user_can_acknowledge
from migrations_audit.secrets import MASK
from migrations_audit.tracking.charts import versions_chart
from migrations_audit.tracking.verdicts import overview_verdicts

from .acknowledgements import panel_context


def home(request):
    upstreams = list(selectors.upstreams_for_user(user=request.user))
    if len(upstreams) == 1:
        return redirect("migrations_audit:overview", slug=upstreams[0].slug)
    return render(request, "migrations_audit/home.html", {"upstreams": upstreams})


def overview(request, slug):
    upstream = selectors.upstream_for_user(user=request.user, slug=slug)
    traffic = selectors.traffic_summary(upstream=upstream)
    target = upstream.target_version
    findings = (
        diff_selectors.request_findings_summary(upstream=upstream, version=target, per_client=False)
        if target
        else None
    )
    confirmed = (
        diff_selectors.signatures_for_upstream(
            upstream=upstream, version_to=target, classification="breaking"
        )
        if target
        else DifferenceSignature.objects.none()
    )
    shown, count = list(confirmed[:10]), confirmed.count()
    context = {
        "upstream": upstream,
        "traffic": traffic,
        "chart": versions_chart(days=traffic["days"], target_version=target),
        "findings": findings,
        "verdicts": overview_verdicts(upstream=upstream),
        # Counted by the database, the first ten shown: the Differences page lists them all.
        "confirmed": shown,
        "confirmed_count": count,
        "confirmed_more": count - len(shown),
        "latest_runs": upstream.runs.all()[:5],
        "losses": selectors.recording_losses(upstream=upstream),
    }
    return render(request, "migrations_audit/overview.html", context)


def traffic(request, slug):
    upstream = selectors.upstream_for_user(user=request.user, slug=slug)
    filters = selectors.TrafficFilter.from_query(request.GET)
    rows, next_cursor = (
        ([], "") if filters.errors else selectors.exchanges_page(upstream=upstream, filters=filters)
    )
    query = request.GET.copy()
    query.pop("after", None)
    context = {
        "upstream": upstream,
        "filters": filters,
        "rows": rows,
        "next_cursor": next_cursor,
        "query": query.urlencode(),
        "paged": bool(request.GET.get("after")),
        "choices": selectors.traffic_choices(upstream=upstream),
    }
    if request.htmx:
        # htmx swaps no 4xx answer: a filter being typed shows its error in place of the results.
        return render(request, "migrations_audit/traffic.html#results", context)
    context["losses"] = selectors.recording_losses(upstream=upstream)
    return render(request, "migrations_audit/traffic.html", context, status=400 if filters.errors else 200)


def exchange_detail(request, slug, exchange_id):
    upstream = selectors.upstream_for_user(user=request.user, slug=slug)
    exchange = get_object_or_404(Exchange.objects.select_related("client"), upstream=upstream, pk=exchange_id)
    runs = list(ReplayRun.objects.filter(results__exchange=exchange).distinct().order_by("-pk"))
    run = next((r for r in runs if str(r.pk) == request.GET.get("run")), runs[0] if runs else None)
    columns = [_column(f"Recorded ({exchange.api_version or 'no version'})", exchange.api_version, exchange)]
    differences = []
    if run is not None:
        differences = list(diff_selectors.differences_for_exchange(exchange=exchange).filter(run=run))
        results = ReplayResult.objects.filter(run=run, exchange=exchange, attempt=1).order_by("version")
        order = {version: index for index, version in enumerate(run.versions)}
        for result in sorted(results, key=lambda r: order.get(r.version, 99)):
            columns.append(_column(f"Replayed under {result.version}", result.version, result))
        _mark(columns[1:], differences)
    body_url = reverse("migrations_audit:exchange_body", args=[upstream.slug, exchange.pk])
    for column in columns:
        column["body"] = (
            body_prepare(
                column["raw_body"],
                marks=column["marks"],
                content_type=header_value(column["headers"], "content-type"),
            )
            if not column["streamed"]
            else None
        )
        column["download"] = f"{body_url}?part=response" + (
            f"&result={column['result_id']}" if column["result_id"] else ""
        )
    streamed_columns = [column for column in columns if column["streamed"]]
    timeline = (
        timeline_align([column["stream"].events for column in streamed_columns]) if streamed_columns else []
    )
    context = {
        "upstream": upstream,
        "exchange": exchange,
        "request_body": body_prepare(
            exchange.request_body, content_type=header_value(exchange.request_headers, "content-type")
        ),
        "request_download": f"{body_url}?part=request",
        "runs": runs,
        "run": run,
        "columns": columns,
        "streamed_columns": streamed_columns,
        "timeline": timeline,
        "differences": [d for d in differences if d.classification != "noise" or request.GET.get("noise")],
        "noise_count": sum(1 for d in differences if d.classification == "noise"),
        "show_noise": bool(request.GET.get("noise")),
        "findings": exchange.request_findings.select_related("rule", "model_rule"),
        "sent": _requests_sent(run, exchange, upstream) if run is not None else [],
    }
    return render(request, "migrations_audit/exchange.html", context)


def _requests_sent(run: ReplayRun, exchange: Exchange, upstream) -> list[dict]:
    """The request each of the run's variants sent, as rewritten, the replay key masked."""
    sent = []
    for label in run.versions:
        variant = run_variant(run, label)
        url, headers, body = replay_request(exchange=exchange, upstream=upstream, version=variant, key=MASK)
        sent.append(
            {
                "label": label,
                "variant": variant,
                "method": exchange.method,
                "url": url,
                "headers": headers,
                "body": body_prepare(body, content_type=header_value(headers, "content-type")),
            }
        )
    return sent


def _column(title, version, source) -> dict:
    streamed = source.streamed
    decoded = body_decode(bytes(source.response_body or b""), source.response_headers)
    return {
        "title": title,
        "version": version,
        "status": source.status,
        "error": source.error,
        "headers": source.response_headers,
        "raw_body": decoded.body,
        "decoded": decoded,
        "streamed": streamed,
        "stream": stream_summarise(source.response_events) if streamed else None,
        "marks": {},
        "header_marks": {},
        "result_id": source.pk if isinstance(source, ReplayResult) else None,
    }


def exchange_body(request, slug, exchange_id):
    """A stored body whole, as an attachment (masked as it was stored): the page shows only its head."""
    upstream = selectors.upstream_for_user(user=request.user, slug=slug)
    exchange = get_object_or_404(Exchange, upstream=upstream, pk=exchange_id)
    part = request.GET.get("part", "response")
    if part not in ("request", "response"):
        raise Http404("No such part")
    source = exchange
    if request.GET.get("result"):
        if part != "response" or not request.GET["result"].isdigit():
            raise Http404("No such result")
        source = get_object_or_404(ReplayResult, exchange=exchange, pk=int(request.GET["result"]))
    body = bytes(getattr(source, f"{part}_body") or b"")
    name = f"exchange-{exchange.pk}-{part}" + (f"-result-{source.pk}" if source is not exchange else "")
    response = HttpResponse(body, content_type="application/octet-stream")
    response["Content-Disposition"] = f'attachment; filename="{name}.body"'
    return response


def _mark(columns: list[dict], differences: list[Difference]) -> None:
    """Mark each difference where it is, on both sides of the pair of versions it compares."""
    by_version = {column["version"]: column for column in columns}
    for difference in differences:
        for version in (difference.version_from, difference.version_to):
            column = by_version.get(version)
            if column is None:
                continue
            if difference.path.startswith("header:"):
                column["header_marks"][difference.path.removeprefix("header:")] = difference.classification
            elif difference.path.startswith("/") or difference.path == "":
                column["marks"].setdefault(difference.path, difference.classification)


def runs(request, slug):
    upstream = selectors.upstream_for_user(user=request.user, slug=slug)
    page = Paginator(ReplayRun.objects.filter(upstream=upstream), 25).get_page(request.GET.get("page"))
    return render(request, "migrations_audit/runs.html", {"upstream": upstream, "page": page})


def differences(request, slug):
    upstream = selectors.upstream_for_user(user=request.user, slug=slug)
    filters = DifferenceFilterForm(request.GET, upstream=upstream)
    if not filters.is_valid():
        context = {"upstream": upstream, "filters": filters}
        return render(request, "migrations_audit/differences.html", context, status=400)
    selection = filters.selection()
    signatures = diff_selectors.signatures_for_upstream(upstream=upstream, **selection)
    page = Paginator(signatures, 50).get_page(request.GET.get("page"))
    clients = (
        DifferenceSignature.clients.through.objects.filter(
            differencesignature_id__in=[s.pk for s in page.object_list]
        )
        .values("differencesignature_id")
        .annotate(n=Count("client_id"))
    )
    affected = {row["differencesignature_id"]: row["n"] for row in clients}
    for signature in page.object_list:
        signature.clients_affected = affected.get(signature.pk, 0)
    filtered = any(value for key, value in selection.items() if key != "include_noise")
    noise_hidden = (
        0
        if selection["include_noise"] or selection["classification"] or filtered
        else upstream.signatures.filter(classification="noise", exchanges__gt=0).count()
    )
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "upstream": upstream,
        "page": page,
        "filters": filters,
        "filtered": filtered,
        "show_noise": selection["include_noise"],
        "noise_hidden": noise_hidden,
        "query": query.urlencode(),
    }
    return render(request, "migrations_audit/differences.html", context)


def difference_examples(request, slug, signature_id):
    upstream = selectors.upstream_for_user(user=request.user, slug=slug)
    signature = get_object_or_404(
        DifferenceSignature.objects.select_related("rule", "model_rule"), upstream=upstream, pk=signature_id
    )
    examples = (
        Difference.objects.filter(upstream=upstream, signature=signature.signature)
        .select_related("exchange__client")
        .order_by("-exchange_id")
    )
    page = Paginator(examples, 20).get_page(request.GET.get("page"))
    context = {
        "upstream": upstream,
        "signature": signature,
        "page": page,
        "clients": signature.clients.all()[:20],
    }
    if signature.classification != "noise" and not request.htmx:
        context["acknowledgement_panel"] = panel_context(
            upstream=upstream,
            signature=signature.signature,
            title=f"{signature.kind} {signature.path} ({signature.endpoint})",
            can_acknowledge=user_can_acknowledge(user=request.user, team=upstream.team),
            request_finding=None,
        )
    template = (
        "migrations_audit/difference_examples.html#examples"
        if request.htmx
        else "migrations_audit/difference_examples.html"
    )
    return render(request, template, context)


def settings_page(request):
    teams = selectors.teams_for_user(user=request.user).prefetch_related("upstreams", "api_tokens")
    return render(request, "migrations_audit/settings.html", {"teams": teams})


@login_not_required
def favicon(request):
    # Browsers ask for /favicon.ico on pages that do not name an icon (raw JSON, the admin).
    return redirect(static("favicon.svg"), permanent=True)


@login_not_required
def health(request):
    return HttpResponse("ok", content_type="text/plain")


def upstream_edit(request, slug=None):
    editable_teams = selectors.teams_editable_by_user(user=request.user)
    upstream = selectors.upstream_for_user(user=request.user, slug=slug) if slug else None
    if upstream is not None and not editable_teams.filter(pk=upstream.team_id).exists():
        raise PermissionDenied("Viewers cannot change an upstream.")
    if not editable_teams.exists():
        raise PermissionDenied("Only team members can create upstreams.")
    form = UpstreamForm(request.POST or None, instance=upstream, teams=editable_teams)
    if request.method == "POST" and form.is_valid():
        saved = form.save()
        messages.success(request, f"Upstream “{saved.name}” saved.")
        return redirect("migrations_audit:overview", slug=saved.slug)
    return render(request, "migrations_audit/upstream_edit.html", {"form": form, "upstream_obj": upstream})


def upstream_delete(request, slug):
    """A confirmation that says what goes with the upstream; the POST of that page deletes it."""
    upstream = selectors.upstream_for_user(user=request.user, slug=slug)
    if not selectors.teams_editable_by_user(user=request.user).filter(pk=upstream.team_id).exists():
        raise PermissionDenied("Viewers cannot delete an upstream.")
    if request.method == "POST":
        if request.POST.get("confirm_slug") != upstream.slug:
            messages.error(request, f"Type “{upstream.slug}” to confirm.")
        else:
            name = upstream.name
            services.upstream_delete(upstream=upstream)
            messages.success(request, f"Upstream “{name}” and everything recorded for it were deleted.")
            return redirect("migrations_audit:settings")
    context = {"upstream_obj": upstream, "going": selectors.upstream_contents(upstream=upstream)}
    return render(request, "migrations_audit/upstream_delete.html", context)
