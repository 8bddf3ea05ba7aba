"""URL configuration: ``/`` and the RFC 8414 metadata (``/register`` never reaches Django)."""

from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("", views.home),
    path(".well-known/oauth-authorization-server", views.metadata),
]
