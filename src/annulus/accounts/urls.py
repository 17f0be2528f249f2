from django.contrib.auth import views as auth_views
from django.urls import path

from . import views
from .forms import OwnPasswordChangeForm

urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.logout_view, name="logout"),
    path("tokens/", views.tokens, name="tokens"),
    path("users/", views.users, name="users"),
    path("users/<int:pk>/password/", views.user_password_reset, name="user_password_reset"),
    path("password/", auth_views.PasswordChangeView.as_view(template_name="accounts/password.html",
                                                            form_class=OwnPasswordChangeForm,
                                                            success_url="/"), name="password_change"),
]
