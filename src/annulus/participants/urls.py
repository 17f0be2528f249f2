from django.urls import path

from . import views

urlpatterns = [
    path("participants/", views.participant_list, name="participants"),
    path("participants/new/", views.prescreen, name="prescreen"),
    path("participants/<int:pk>/", views.participant_detail, name="participant"),
    path("participants/<int:pk>/consent/", views.consent, name="consent"),
    path("participants/<int:pk>/screening/", views.screening, name="screening"),
    path("participants/<int:pk>/eligibility/", views.eligibility_decision, name="eligibility_decision"),
    path("participants/<int:pk>/enrol/", views.enrol, name="enrol"),
    path("participants/<int:pk>/withdraw/", views.withdraw, name="withdraw"),
    path("participants/<int:pk>/audit/", views.audit_trail, name="participant_audit"),
    path("participants/<int:pk>/locks/", views.record_locks, name="record_locks"),
]
