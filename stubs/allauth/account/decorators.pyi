from collections.abc import Callable
from typing import Any, TypeVar, overload

from django.http import HttpRequest

_View = TypeVar("_View", bound=Callable[..., Any])

@overload
def reauthentication_required(
    function: _View,
    redirect_field_name: str = ...,
    allow_get: bool = False,
    enabled: bool | Callable[[HttpRequest], bool] | None = None,
    *,
    app: str = "",
) -> _View: ...
@overload
def reauthentication_required(
    function: None = None,
    redirect_field_name: str = ...,
    allow_get: bool = False,
    enabled: bool | Callable[[HttpRequest], bool] | None = None,
    *,
    app: str = "",
) -> Callable[[_View], _View]: ...
