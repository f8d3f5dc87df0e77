from typing import Any

from django import forms
from django.http import HttpRequest

class LoginForm(forms.Form):
    request: HttpRequest | None
    def __init__(self, *args: Any, **kwargs: Any) -> None: ...
    def clean(self) -> dict[str, Any]: ...
