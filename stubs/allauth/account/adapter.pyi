from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.forms import BaseForm
from django.http import HttpRequest

class DefaultAccountAdapter:
    request: HttpRequest | None
    def __init__(self, request: HttpRequest | None = None) -> None: ...
    def save_user(
        self, request: HttpRequest, user: AbstractBaseUser, form: BaseForm, commit: bool = True
    ) -> AbstractBaseUser: ...
    def get_client_ip(self, request: HttpRequest) -> str: ...
    def send_notification_mail(
        self,
        template_prefix: str,
        user: AbstractBaseUser,
        context: dict[str, Any] | None = None,
        email: str | None = None,
    ) -> None: ...

def get_adapter(request: HttpRequest | None = None) -> DefaultAccountAdapter: ...
