from django.urls import path

from . import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("protocol/", views.protocol_page, name="protocol"),
    path("protocol/upload/", views.protocol_upload, name="protocol_upload"),
    path("notifications/", views.notifications, name="notifications"),
]
