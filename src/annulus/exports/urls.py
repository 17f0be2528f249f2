from django.urls import path

from . import views

urlpatterns = [
    path("exports/", views.exports, name="exports"),
    path("exports/<int:pk>/download/", views.download, name="export_download"),
]
