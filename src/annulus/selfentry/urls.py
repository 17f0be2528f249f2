from django.urls import path

from . import views

urlpatterns = [
    # the participant's pages: no account, the link's token and the card code
    path("p/<str:token>/", views.participant_page, name="selfentry"),
    path("participants/<int:pk>/self-entry/<str:key>/", views.issue, name="selfentry_issue"),
]
