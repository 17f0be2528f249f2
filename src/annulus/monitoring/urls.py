from django.urls import path

from . import views

urlpatterns = [
    path("monitoring/", views.grid, name="monitoring_grid"),
    path("monitoring/participants/<int:pk>/", views.casebook, name="monitoring_casebook"),
    path("monitoring/participants/<int:pk>/sdv/", views.sdv, name="monitoring_sdv"),
    path("monitoring/participants/<int:pk>/review/", views.participant_review, name="monitoring_review"),
    path("monitoring/findings/", views.findings, name="monitoring_findings"),
    path("monitoring/findings/<int:pk>/", views.finding, name="monitoring_finding"),
]
