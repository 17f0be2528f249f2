from django.urls import path

from . import views

urlpatterns = [
    path("participants/<int:pk>/casebook/", views.casebook, name="casebook"),
]
