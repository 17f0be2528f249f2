from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "annulus.accounts"
    label = "accounts"
    verbose_name = "Accounts and roles"
