from django.urls import path

from . import views

urlpatterns = [
    path("reports/", views.reports, name="reports"),
    path("reports/<int:pk>/download/", views.download, name="report_download"),
]
