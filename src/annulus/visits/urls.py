from django.urls import path

from . import views

urlpatterns = [
    # the cell product's harvest, recorded on its own page
    path("participants/<int:pk>/liposuction/", views.liposuction, name="harvest"),
    path("participants/<int:pk>/visits/unscheduled/new/", views.unscheduled, name="unscheduled_visit"),
    path("participants/<int:pk>/visits/<str:key>/", views.visit_detail, name="visit"),
    path("participants/<int:pk>/visits/<str:key>/entry/", views.visit_entry, name="visit_entry"),
    path("participants/<int:pk>/visits/<str:key>/<str:form_id>/", views.crf_form, name="crf_form"),
    path("participants/<int:pk>/visits/<str:key>/<str:form_id>/preview/", views.crf_preview, name="crf_preview"),
    path("visits/overdue/", views.overdue, name="visits_overdue"),
    path("visits/calls/", views.call_list, name="call_list"),
]
