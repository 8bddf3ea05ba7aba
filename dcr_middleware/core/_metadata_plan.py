"""The common registration request, validated by a plan compiled once from the settings.

Theory of operation. :class:`~.client_metadata.ClientMetadata` interprets every rule of RFC 7591,
the OpenID Connect fields and the size limits for every request: a third of a registration's CPU
time (docs/performance.md). Almost every request sends a handful of RFC 7591 fields (redirect
URIs, a name, grant and response types, an auth method, perhaps a scope, contacts and web page
URLs). :meth:`MetadataPlan.accept` handles exactly those requests: with the settings turned into
sets and defaults once, it runs the same checks (the same URI rules of :mod:`._uris`, the same
§2.1 consistency of :mod:`.grant_types`) and returns the same metadata, in the same key order.

It only ever *accepts*. A request with any other field, a ``null``, a value of an unexpected type
or anything the checks refuse gets ``None``, and the full validator decides it, with its error
message. So an answer differs only if this module accepts what the full validator refuses or
returns other metadata: ``tests/unit/test_metadata_plan.py`` compares the two over generated
requests and settings.
"""

from __future__ import annotations

import re
from typing import Any

from authlib.oauth2.rfc7591 import ClientMetadataClaims

from . import _uris
from . import grant_types as _flows
from .oidc import application_type_problem
from .settings import Settings

# The RFC 7591 §2 fields this plan handles; any other key sends the request to the full
# validator (which ignores unknown fields and checks the OpenID Connect and language-tagged ones).
FAST_FIELDS = frozenset(
    {
        "redirect_uris",
        "token_endpoint_auth_method",
        "grant_types",
        "response_types",
        "client_name",
        "client_uri",
        "logo_uri",
        "scope",
        "contacts",
        "tos_uri",
        "policy_uri",
        "software_id",
        "software_version",
    }
)
# The key order of the full validator's answer: that of Authlib's registered claims.
_ORDER = tuple(name for name in ClientMetadataClaims.REGISTERED_CLAIMS if name in FAST_FIELDS)
_URL_FIELDS = ("client_uri", "logo_uri", "tos_uri", "policy_uri")
_STRING_FIELDS = ("client_name", "software_id", "software_version")
_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+\Z")  # as client_metadata's


def _text(value: Any) -> bool:
    """``_values.string``'s rule: a non-empty string of valid Unicode (no lone surrogates)."""
    if type(value) is not str or not value:
        return False
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _texts(value: Any) -> bool:
    """``_values.string_list``'s rule: an array of such strings, none repeated."""
    return (
        type(value) is list and all(_text(item) for item in value) and len(set(value)) == len(value)
    )


class MetadataPlan:
    """The settings' rules for the common request, compiled once (see the module docstring)."""

    def __init__(self, settings: Settings) -> None:
        self.max_string = settings.max_string_length
        self.max_redirect_uris = settings.max_redirect_uris
        self.max_contacts = settings.max_contacts
        self.default_grants = settings.default_grant_types
        self.grants = frozenset(settings.allowed_grant_types)
        self.responses = frozenset(settings.allowed_response_types)
        self.methods = frozenset(settings.allowed_auth_methods)
        self.default_scope = " ".join(settings.default_scopes) if settings.default_scopes else None
        allowed = settings.allowed_scopes
        self.scopes = None if allowed is None else frozenset(allowed)
        self.insecure = settings.allow_insecure_redirect_uris
        self.hosts = settings.allowed_redirect_hosts
        # A request without language-tagged fields passes that cap unless it is negative.
        self.usable = settings.max_language_tagged_fields >= 0

    def accept(self, raw: dict[str, Any]) -> dict[str, Any] | None:
        """The metadata to register for ``raw``, exactly as the full validator returns it; or
        ``None`` when the full validator must decide (it may accept or refuse)."""
        if not self.usable or not raw.keys() <= FAST_FIELDS:
            return None
        if not self._sizes(raw):
            return None
        fields = dict(raw)
        for name in _STRING_FIELDS:
            if name in fields and not _text(fields[name]):
                return None
        grants = fields.get("grant_types")
        if grants is None:
            grants = fields["grant_types"] = list(self.default_grants)
        if not _texts(grants) or not grants or not self.grants.issuperset(grants):
            return None
        responses = fields.get("response_types")
        if responses is None:
            responses = fields["response_types"] = _flows.default_response_types(grants)
        if not _texts(responses) or not self.responses.issuperset(responses):
            return None
        if _flows.inconsistency(grants, responses) is not None:
            return None
        if not self._redirect_uris(fields.get("redirect_uris"), grants, responses):
            return None
        method = fields.setdefault("token_endpoint_auth_method", "client_secret_basic")
        if not _text(method) or method not in self.methods or method == "private_key_jwt":
            return None  # private_key_jwt needs jwks or jwks_uri: not fields of this plan
        if method == "none" and "client_credentials" in grants:
            return None
        for name in _URL_FIELDS:
            value = fields.get(name)
            if value is not None and (not _text(value) or _uris.web_url_problem(value)):
                return None
        if not self._scope(fields):
            return None
        if "contacts" in fields and not _texts(fields["contacts"]):
            return None
        return {name: fields[name] for name in _ORDER if name in fields}

    def _sizes(self, raw: dict[str, Any]) -> bool:
        # client_metadata._check_sizes: string lengths (list items too) and list counts; here
        # also "no null, no number, no object", which the full validator treats its own way.
        limit = self.max_string
        for value in raw.values():
            if type(value) is str:
                if len(value) > limit:
                    return False
            elif type(value) is list:
                if any(type(item) is str and len(item) > limit for item in value):
                    return False
            else:
                return False
        uris, contacts = raw.get("redirect_uris", ()), raw.get("contacts", ())
        return len(uris) <= self.max_redirect_uris and len(contacts) <= self.max_contacts

    def _redirect_uris(self, uris: Any, grants: list[str], responses: list[str]) -> bool:
        # RFC 7591 §2 (_values.redirect_uri_list), then OpenID Connect Registration §2
        # (oidc.OIDCMetadata): required with a response type; the implicit grant's web rules.
        if uris is not None and (
            type(uris) is not list
            or not all(type(uri) is str for uri in uris)
            or len(set(uris)) != len(uris)
        ):
            return False
        if not uris:
            return not (_flows.needs_redirect_uris(grants) or responses)
        for uri in uris:
            problem = _uris.redirect_uri_problem(
                uri, allow_insecure=self.insecure, allowed_hosts=self.hosts
            )
            if problem is not None:
                return False
        if "implicit" in grants:
            return all(application_type_problem(uri, "web", implicit=True) is None for uri in uris)
        return True

    def _scope(self, fields: dict[str, Any]) -> bool:
        scope = fields.get("scope")
        if scope is None:
            if self.default_scope is not None:
                fields["scope"] = self.default_scope
            return True
        if not _text(scope):
            return False
        tokens = scope.split(" ")
        if not all(_SCOPE_TOKEN.match(token) for token in tokens):
            return False
        return self.scopes is None or self.scopes.issuperset(tokens)


_PLANS: dict[int, tuple[Settings, MetadataPlan]] = {}


def plan_for(settings: Settings) -> MetadataPlan:
    """The plan of ``settings``, compiled on first use (kept for the last few settings)."""
    entry = _PLANS.get(id(settings))
    if entry is None or entry[0] is not settings:
        if len(_PLANS) >= 16:  # settings built per request (a token policy): do not grow
            _PLANS.clear()
        entry = _PLANS[id(settings)] = (settings, MetadataPlan(settings))
    return entry[1]
