from django.urls import path

from . import views

urlpatterns = [
    path("allocation/", views.designer, name="allocation_designer"),
    path("allocation/documents/<str:name>", views.designer_document, name="allocation_document"),
    path("allocation/verify/", views.designer_verify, name="allocation_verify"),
    path("participants/<int:pk>/randomise/", views.randomise, name="randomise"),
    path("participants/<int:pk>/transplant/", views.transplant, name="treatment-record"),
    path("participants/<int:pk>/emergency-unblinding/", views.emergency, name="emergency_unblinding"),
    path("pharmacy/", views.pharmacy, name="pharmacy"),
    path("pharmacy/kits/", views.kit_list, name="kit_list"),
    path("pharmacy/kits/kit-list.csv", views.kit_list_csv, name="kit_list_csv"),
    path("participants/<int:pk>/kits/<str:key>/", views.allocate_kit, name="allocate_kit"),
    path("pharmacy/level2-key.csv", views.level2_document, name="pharmacy_level2"),
    path("pharmacy/envelopes/<int:envelope_id>/", views.envelope, name="pharmacy_envelope"),
    path("pharmacy/envelopes/<int:envelope_id>/dispense/", views.dispense, name="pharmacy_dispense"),
    path("pharmacy/envelopes/<int:envelope_id>/label/", views.sachet_label, name="pharmacy_label"),
    path("pharmacy/envelopes/<int:envelope_id>/letter/", views.letter, name="pharmacy_letter"),
    path("unblinding/", views.unblinding, name="unblinding"),
    path("unblinding/emergency/", views.emergency_list, name="emergency_list"),
    path("unblinding/emergency/<int:record_id>/", views.emergency_record, name="emergency_record"),
]
