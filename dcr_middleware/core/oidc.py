"""OpenID Connect Dynamic Client Registration 1.0 §2 client metadata, on top of RFC 7591's.

Theory of operation: :class:`~dcr_middleware.core.client_metadata.ClientMetadata` first validates
the RFC 7591 fields (grant and response types, redirect URIs, the auth method), then hands the whole
object to :func:`validate_oidc_metadata`, which checks the OpenID Connect fields against that result
and returns the ones to register. :class:`OIDCMetadata` is Authlib's OIDC claims class (its field
list and its ``*_enc`` defaulting are reused) with the SPEC §6 gaps closed:

* ``redirect_uris`` is required of every client with a response type (Authlib never asks);
* the ``application_type`` redirect URI rules are enforced (Authlib only checks the value);
* the ``id_token_signed_response_alg: none`` rule reads ``response_types`` (Authlib reads the
  singular ``response_type``, which registration requests do not have, so it never fires);
* every value is type-checked, every algorithm checked against the server's lists.

Defaults that the specification defines for an absent field (``application_type`` ``web``,
``id_token_signed_response_alg`` ``RS256``, ``require_auth_time`` false) are applied when checking
but not written into the record: absent means the default, and OAuth-only clients (MCP clients)
keep their RFC 7591 answers. The one default that is stored is the ``*_enc`` that goes with an
``*_alg`` the client sent, since it depends on the client's choice.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from authlib.oidc.registration import ClientMetadataClaims as AuthlibOIDCClaims

from . import _uris
from ._values import fail, redirect_uri_list, shown, string, string_list
from .errors import InvalidClientMetadataError, InvalidRedirectURIError

if TYPE_CHECKING:
    from .settings import Settings

# OIDC Registration §2, plus post_logout_redirect_uris (OIDC RP-Initiated Logout 1.0 §3.1).
CLAIMS = (*AuthlibOIDCClaims.REGISTERED_CLAIMS, "post_logout_redirect_uris")
APPLICATION_TYPES = ("web", "native")
SUBJECT_TYPES = frozenset({"public", "pairwise"})
DEFAULT_ID_TOKEN_ALG = "RS256"  # noqa: S105 - an algorithm name, not a secret
DEFAULT_ENC = "A128CBC-HS256"
SIGNING_FIELDS = (
    "id_token_signed_response_alg",
    "userinfo_signed_response_alg",
    "request_object_signing_alg",
    "token_endpoint_auth_signing_alg",
)
ENCRYPTION_FIELDS = (
    ("id_token_encrypted_response_alg", "id_token_encrypted_response_enc"),
    ("userinfo_encrypted_response_alg", "userinfo_encrypted_response_enc"),
    ("request_object_encryption_alg", "request_object_encryption_enc"),
)
JWT_AUTH_METHODS = ("private_key_jwt", "client_secret_jwt")
# OIDC Registration §2: "loopback URLs use localhost or the IP loopback literals 127.0.0.1 or
# [::1] as the hostname".
_NATIVE_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
_REFERENCE = "(OpenID Connect Registration section 2)"
_SECTOR = "sector_identifier_uri"
# RFC 3986 §3.5: fragment = *( pchar / "/" / "?" )
_FRAGMENT = re.compile(r"^[A-Za-z0-9\-._~!$&'()*+,;=:@/?%]*\Z")


def validate_oidc_metadata(metadata: Mapping[str, Any], settings: Settings) -> dict[str, Any]:
    """Check the OpenID Connect fields of RFC 7591-validated ``metadata``; return the ones to
    register (with the ``*_enc`` defaults applied)."""
    claims = OIDCMetadata(metadata, settings)
    claims.validate()
    return claims.get_registered_claims()  # type: ignore[no-any-return]


class OIDCMetadata(AuthlibOIDCClaims):  # type: ignore[misc]
    """Authlib's OIDC ``ClientMetadataClaims`` with types, policy and the SPEC §6 fixes."""

    REGISTERED_CLAIMS: ClassVar[list[str]] = list(CLAIMS)

    def __init__(self, metadata: Mapping[str, Any], settings: Settings) -> None:
        super().__init__(dict(metadata), {})
        self.settings = settings

    def validate(self, now: object = None, leeway: int = 0) -> None:
        """Run every check; the first failure raises one of the library's errors."""
        self.validate_sector_identifier_uri()
        self.validate_redirect_uris()
        self.validate_post_logout_redirect_uris()
        self.validate_application_type()
        self.validate_subject_type()
        self.validate_default_max_age()
        self.validate_require_auth_time()
        self.validate_default_acr_values()
        self.validate_initiate_login_uri()
        self.validate_request_uris()
        self.validate_id_token_signed_response_alg()
        self.validate_token_endpoint_auth_signing_alg()
        for field in SIGNING_FIELDS:
            self._check_alg(field, self.settings.allowed_signing_algs)
        for alg_field, enc_field in ENCRYPTION_FIELDS:
            self._check_encryption(alg_field, enc_field)

    def validate_sector_identifier_uri(self) -> None:
        """An https URL, only with ``DCR_SECTOR_IDENTIFIER_URIS``: the flows then fetch and
        check it (OIDC Registration §5; :mod:`dcr_middleware.core.sector`)."""
        if _SECTOR not in self:
            return
        if not self.settings.sector_identifier_uris:
            raise sector_not_supported()
        uri = string(self[_SECTOR], _SECTOR)
        # OIDC Registration §5: "The value of the sector_identifier_uri MUST be a URL using the
        # https scheme that references a JSON file containing an array of redirect_uri values."
        problem = _uris.web_url_problem(uri, https_only=True)
        if problem:
            raise fail(_SECTOR, problem)

    def validate_redirect_uris(self) -> None:
        """Required of every client with a response type (Authlib gap: never required).

        OIDC Registration §2 makes ``redirect_uris`` REQUIRED; RFC 7591 clients without a
        redirect flow (``client_credentials``) register none, so it is required whenever the
        client has a response type, all of which answer by redirecting (``none`` included).
        """
        if self.get("response_types") and not self.get("redirect_uris"):
            raise InvalidRedirectURIError(
                f"redirect_uris: required for clients with response types {_REFERENCE}"
            )

    def validate_post_logout_redirect_uris(self) -> None:
        """An array of URIs under the redirect URI rules (RP-Initiated Logout 1.0 §3.1)."""
        if "post_logout_redirect_uris" not in self:
            return
        field = "post_logout_redirect_uris"
        value = redirect_uri_list(field, self[field], self.settings)
        self._check_list_size(field, value, InvalidRedirectURIError)

    def validate_application_type(self) -> None:
        """``web`` (the default) or ``native``, and the redirect URIs that type allows."""
        kind = self.get("application_type", "web")
        if kind not in APPLICATION_TYPES:
            raise fail("application_type", "must be 'web' or 'native'")
        implicit = "implicit" in self.get("grant_types", ())
        # "The Authorization Server MUST verify that all the registered redirect_uris conform
        # to these constraints." (OIDC Registration §2); post-logout ones are held to them too.
        for field in ("redirect_uris", "post_logout_redirect_uris"):
            for uri in self.get(field, ()):
                problem = application_type_problem(uri, kind, implicit=implicit)
                if problem:
                    raise InvalidRedirectURIError(f"{field}: {shown(uri)} {problem}")

    def validate_subject_type(self) -> None:
        """One of ``DCR_ALLOWED_SUBJECT_TYPES``; ``pairwise`` needs a single redirect host."""
        if "subject_type" not in self:
            return
        self._check_alg("subject_type", self.settings.allowed_subject_types)
        hosts = {urlsplit(uri).hostname for uri in self.get("redirect_uris", ())}
        if self["subject_type"] == "pairwise" and len(hosts) > 1 and not self.get(_SECTOR):
            # OIDC Core §8.1: "If there are multiple hostnames in the registered redirect_uris,
            # the Client MUST register a sector_identifier_uri" (accepted only when fetched).
            other = f" or a {_SECTOR}" if self.settings.sector_identifier_uris else ""
            raise fail("subject_type", f"pairwise needs redirect_uris on one host{other}")

    def validate_default_max_age(self) -> None:
        """A number of seconds: a non-negative integer."""
        value = self.get("default_max_age")
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < 0
        ):
            raise fail("default_max_age", "must be a non-negative integer (seconds)")

    def validate_require_auth_time(self) -> None:
        """A boolean; absent means false (not stored)."""
        if "require_auth_time" in self and not isinstance(self["require_auth_time"], bool):
            raise fail("require_auth_time", "must be true or false")

    def validate_default_acr_values(self) -> None:
        """An array of strings, in order of preference."""
        if "default_acr_values" in self:
            values = string_list(self["default_acr_values"], "default_acr_values")
            self._check_list_size("default_acr_values", values, InvalidClientMetadataError)

    def validate_initiate_login_uri(self) -> None:
        """OIDC Registration §2: "URI using the https scheme"."""
        if "initiate_login_uri" in self:
            uri = string(self["initiate_login_uri"], "initiate_login_uri")
            problem = _uris.web_url_problem(uri, https_only=True)
            if problem:
                raise fail("initiate_login_uri", problem)

    def validate_request_uris(self) -> None:
        """An array of https URLs, each may end in a fragment (the hash of the file)."""
        if "request_uris" not in self:
            return
        uris = string_list(self["request_uris"], "request_uris")
        self._check_list_size("request_uris", uris, InvalidClientMetadataError)
        for uri in uris:
            # OIDC Registration §2: these URI values SHOULD include the base64url-encoded
            # SHA-256 hash value of the file contents ... as the value of the URI fragment.
            base, _, fragment = uri.partition("#")
            problem = _uris.web_url_problem(base, https_only=True)
            if problem is None and not _FRAGMENT.match(fragment):
                problem = "has an invalid fragment"
            if problem:
                raise fail("request_uris", f"{shown(uri)} {problem}")

    def validate_id_token_signed_response_alg(self) -> None:
        """Never ``none`` for a client that gets ID tokens from the authorization endpoint."""
        # OIDC Registration §2: "The value none MUST NOT be used as the ID Token alg value
        # unless the Client uses only Response Types that return no ID Token from the
        # Authorization Endpoint". (Authlib reads "response_type", a key requests never have.)
        if self.get("id_token_signed_response_alg") == "none" and any(
            "id_token" in response_type.split() for response_type in self.get("response_types", ())
        ):
            raise fail(
                "id_token_signed_response_alg",
                f"'none' is not allowed with response types that return an ID token {_REFERENCE}",
            )

    def validate_token_endpoint_auth_signing_alg(self) -> None:
        """Never ``none``; only with the JWT auth methods, of the matching key family."""
        field = "token_endpoint_auth_signing_alg"
        if field not in self:
            return
        alg = string(self[field], field)
        if alg == "none":
            # OIDC Registration §2: "The value none MUST NOT be used."
            raise fail(field, f"'none' is not allowed {_REFERENCE}")
        method = self.get("token_endpoint_auth_method")
        if method not in JWT_AUTH_METHODS:
            raise fail(field, "is only used with private_key_jwt or client_secret_jwt")
        # client_secret_jwt signs with the shared secret (HMAC), private_key_jwt with a key pair.
        if (method == "client_secret_jwt") != alg.startswith("HS"):
            wanted = "an HS* (HMAC)" if method == "client_secret_jwt" else "an asymmetric"
            raise fail(field, f"{method} needs {wanted} algorithm")

    def _check_encryption(self, alg_field: str, enc_field: str) -> None:
        if enc_field in self and alg_field not in self:
            # OIDC Registration §2: "When id_token_encrypted_response_enc is included,
            # id_token_encrypted_response_alg MUST also be provided." (and likewise the others)
            raise fail(enc_field, f"requires {alg_field}")
        if alg_field not in self:
            return
        self._check_alg(alg_field, self.settings.allowed_encryption_algs)
        how = "" if enc_field in self else f" (the default when {alg_field} is given)"
        # Authlib's method: "If ..._alg is specified, the default ..._enc value is A128CBC-HS256."
        getattr(AuthlibOIDCClaims, f"validate_{enc_field}")(self)
        self._check_alg(enc_field, self.settings.allowed_encryption_encs, how)

    def _check_alg(self, field: str, allowed: tuple[str, ...], how: str = "") -> None:
        if field not in self:
            return
        value = string(self[field], field)
        if value not in allowed:
            supported = ", ".join(allowed) if allowed else "nothing (the feature is off)"
            raise fail(field, f"{shown(value)}{how} is not supported; supported: {supported}")

    def _check_list_size(
        self, field: str, values: list[str], error: type[InvalidClientMetadataError]
    ) -> None:
        cap = self.settings.max_redirect_uris
        if len(values) > cap:
            raise error(f"{field}: at most {cap} values are allowed")


def sector_not_supported() -> InvalidClientMetadataError:
    """The refusal of ``sector_identifier_uri`` while ``DCR_SECTOR_IDENTIFIER_URIS`` is off."""
    return InvalidClientMetadataError(
        f"{_SECTOR} is not supported: this server does not fetch it "
        "(DCR_SECTOR_IDENTIFIER_URIS is off)"
    )


def application_type_problem(uri: str, kind: str, *, implicit: bool) -> str | None:
    """Say how an (already valid) redirect URI breaks the ``application_type`` rules, or
    return ``None``.

    OIDC Registration §2: "Web Clients using the OAuth Implicit Grant Type MUST only register
    URLs using the https scheme as redirect_uris; they MUST NOT use localhost as the hostname.
    Native Clients MUST only register redirect_uris using custom URI schemes or loopback URLs
    using the http scheme". Web clients without the implicit grant keep the RFC 8252 rules of
    :mod:`dcr_middleware.core._uris` (https, loopback http, private-use schemes): ``web`` is the
    default, and OAuth clients such as MCP clients never send ``application_type``.
    """
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if kind == "native":
        if scheme == "https":
            return (
                "is not allowed for a native client: use a custom scheme or http on a "
                f"loopback host {_REFERENCE}"
            )
        if scheme == "http" and host not in _NATIVE_LOOPBACK:
            return f"must use localhost, 127.0.0.1 or [::1] for a native client {_REFERENCE}"
        return None
    if implicit and scheme != "https":
        return f"must use https for a web client using the implicit grant {_REFERENCE}"
    if implicit and _uris.is_loopback_host(host):
        return f"must not use localhost for a web client using the implicit grant {_REFERENCE}"
    return None
