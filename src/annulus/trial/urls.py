from django.urls import path

from . import dictionary_views, views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("protocol/", views.protocol_page, name="protocol"),
    path("protocol/upload/", views.protocol_upload, name="protocol_upload"),
    path("notifications/", views.notifications, name="notifications"),
    path("data-dictionary/", dictionary_views.data_dictionary_page, name="data_dictionary"),
    path("data-dictionary.csv", dictionary_views.data_dictionary_csv, name="data_dictionary_csv"),
]
