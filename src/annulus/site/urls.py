import importlib

from django.apps import apps
from django.http import HttpResponse
from django.urls import include, path

from .api import api


def healthz(request):
    return HttpResponse("ok", content_type="text/plain")


urlpatterns = [
    path("api/v1/", api.urls),
    path("i18n/", include("django.conf.urls.i18n")),
    path("healthz", healthz),
    path("accounts/", include("annulus.accounts.urls")),
]

# each app with a urls.py contributes its pages (the trial app owns "/")
for config in apps.get_app_configs():
    if config.name.startswith("annulus.") and config.name != "annulus.accounts":
        try:
            importlib.import_module(f"{config.name}.urls")
        except ModuleNotFoundError as exc:
            if exc.name == f"{config.name}.urls":
                continue
            raise
        urlpatterns.append(path("", include(f"{config.name}.urls")))

handler400 = "annulus.trial.views.error_400"
handler403 = "annulus.trial.views.error_403"
handler404 = "annulus.trial.views.error_404"
handler500 = "annulus.trial.views.error_500"
