from typing import Any

from allauth.socialaccount.models import SocialLogin
from django.contrib.auth.base_user import AbstractBaseUser
from django.http import HttpRequest

class DefaultSocialAccountAdapter:
    request: HttpRequest | None
    def __init__(self, request: HttpRequest | None = None) -> None: ...
    def save_user(
        self, request: HttpRequest, sociallogin: SocialLogin, form: Any = None
    ) -> AbstractBaseUser: ...
    def populate_user(
        self, request: HttpRequest, sociallogin: SocialLogin, data: dict[str, Any]
    ) -> AbstractBaseUser: ...
    # Provider objects (allauth.socialaccount.providers.base) are not stubbed.
    def list_providers(self, request: HttpRequest) -> list[Any]: ...

def get_adapter(request: HttpRequest | None = None) -> DefaultSocialAccountAdapter: ...
