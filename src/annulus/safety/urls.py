from django.urls import path

from . import views

urlpatterns = [
    path("participants/<int:pk>/adverse-events/new/", views.ae_new, name="safety_ae_new"),
    path("safety/", views.listing, name="safety"),
    path("safety/tasks/<int:pk>/", views.ae_task, name="safety_ae_task"),
    path("safety/adverse-events/<int:pk>/", views.ae_detail, name="safety_ae"),
    path("safety/adverse-events/<int:pk>/edit/", views.ae_edit, name="safety_ae_edit"),
    path("safety/adverse-events/<int:pk>/withdraw/", views.ae_withdraw, name="safety_ae_withdraw"),
    path("safety/sae/", views.sae_dashboard, name="safety_sae"),
    path("safety/sae/reports/<int:pk>/", views.sae_report, name="safety_sae_report"),
    path("safety/dsmb/", views.dsmb, name="safety_dsmb"),
    path("safety/dsmb/alerts/<int:pk>/", views.dsmb_alert, name="safety_dsmb_alert"),
    path("safety/dsmb/reports/<int:pk>/", views.dsmb_report, name="safety_dsmb_report"),
    path("safety/dsmb/reports/<int:pk>/pdf/", views.dsmb_report_pdf, name="safety_dsmb_report_pdf"),
    path("safety/dsmb/recommendations/new/", views.dsmb_recommend, name="safety_dsmb_recommend"),
]
