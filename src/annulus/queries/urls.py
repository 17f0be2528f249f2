from django.urls import path

from . import views

urlpatterns = [
    path("queries/", views.dashboard, name="queries"),
    path("queries/new/", views.raise_page, name="query_new"),
    path("queries/<int:pk>/", views.thread, name="query"),
]
