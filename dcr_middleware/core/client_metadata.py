"""RFC 7591 §2 client metadata validation, built on Authlib's claims class with its gaps closed.

:func:`validate_client_metadata` takes the parsed JSON object of a registration request and the
server :class:`~dcr_middleware.core.settings.Settings`, and returns the metadata to register: every
known field type-checked, defaults applied and then checked against the allowed lists, unknown
fields dropped (RFC 7591 §2: "The authorization server MUST ignore any client metadata sent by
the client that it does not understand"), language-tagged fields (§2.2) kept unmodified. The
OpenID Connect Registration 1.0 fields are checked by :mod:`dcr_middleware.core.oidc`, last.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any, ClassVar

from authlib.oauth2.rfc7591 import ClientMetadataClaims
from joserfc.errors import JoseError

from . import _uris, oidc
from . import grant_types as _flows
from ._metadata_plan import plan_for
from ._values import fail as _fail
from ._values import redirect_uri_list
from ._values import shown as _shown
from ._values import string as _string
from ._values import string_list as _string_list
from .errors import InvalidClientMetadataError, InvalidRedirectURIError
from .settings import Settings

# RFC 7591 §2.2: human-readable values that MAY be internationalized with "#<BCP 47 tag>".
LOCALIZABLE = ("client_name", "client_uri", "logo_uri", "tos_uri", "policy_uri")
_URL_FIELDS = ("client_uri", "logo_uri", "tos_uri", "policy_uri")
_STRING_FIELDS = ("client_name", "software_id", "software_version")
# RFC 7591 §2: "If unspecified or omitted, the default is client_secret_basic".
DEFAULT_AUTH_METHOD = "client_secret_basic"
_LANGUAGE_TAG = re.compile(r"^[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*\Z")
_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+\Z")
_PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_ASYMMETRIC_KTY = frozenset({"RSA", "EC", "OKP"})


def validate_client_metadata(raw: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Validate a registration request object; return the metadata to register.

    Raises :class:`InvalidRedirectURIError` or :class:`InvalidClientMetadataError` naming the
    offending field. The common request is checked by a plan compiled from the settings
    (:mod:`._metadata_plan`: the same rules, the same answer); every other one here.
    """
    accepted = plan_for(settings).accept(raw)
    if accepted is not None:
        return accepted
    claims = ClientMetadata(raw, settings)
    claims.validate()
    return claims.registered()


class ClientMetadata(ClientMetadataClaims):  # type: ignore[misc]
    """Authlib's ``ClientMetadataClaims`` with types, URI rules, defaults and policy enforced."""

    # RFC 7591 §2 fields, then the OpenID Connect ones (:mod:`dcr_middleware.core.oidc`).
    REGISTERED_CLAIMS: ClassVar[list[str]] = [*ClientMetadataClaims.REGISTERED_CLAIMS, *oidc.CLAIMS]

    def __init__(self, raw: dict[str, Any], settings: Settings) -> None:
        # A JSON null is treated as an omitted field (as RFC 7592 §2.2 does for updates).
        super().__init__({k: v for k, v in raw.items() if v is not None}, {})
        self.settings = settings

    def validate(self, now: object = None, leeway: int = 0) -> None:
        """Run every check; the first failure raises one of the library's errors."""
        self._check_sizes()
        for field in _STRING_FIELDS:
            if field in self:
                _string(self[field], field)
        self.validate_grant_types()
        self.validate_response_types()
        self.validate_redirect_uris()
        self.validate_token_endpoint_auth_method()
        for field in _URL_FIELDS:
            self._check_url(field, self.get(field))
        self.validate_scope()
        self.validate_contacts()
        self.validate_jwks_uri()
        self.validate_jwks()
        # OpenID Connect Registration 1.0 §2 fields, checked against the RFC 7591 result above.
        self.update(oidc.validate_oidc_metadata(self, self.settings))
        self._validate_localized()

    def _check_sizes(self) -> None:
        """Registration policy limits: string lengths and list sizes (``DCR_MAX_*``)."""
        limit = self.settings.max_string_length
        tagged = sum(1 for key in self if _language_tagged(key))
        if tagged > self.settings.max_language_tagged_fields:
            # RFC 7591 §2.2 sets no bound; each tagged member is stored and echoed, so the
            # count is capped (DCR_MAX_LANGUAGE_TAGGED_FIELDS) like redirect_uris and contacts.
            raise InvalidClientMetadataError(
                f"language-tagged fields (client_name#fr...): at most "
                f"{self.settings.max_language_tagged_fields} are allowed, got {tagged}"
            )
        caps = {
            "redirect_uris": self.settings.max_redirect_uris,
            "contacts": self.settings.max_contacts,
        }
        for key, value in self.items():
            if key == "jwks" or not (key in self.REGISTERED_CLAIMS or _language_tagged(key)):
                continue
            error = (
                InvalidRedirectURIError if key == "redirect_uris" else InvalidClientMetadataError
            )
            items = value if isinstance(value, list) else [value]
            if any(isinstance(v, str) and len(v) > limit for v in items):
                raise error(f"{key}: strings may be at most {limit} characters")
            if key in caps and isinstance(value, list) and len(value) > caps[key]:
                raise error(f"{key}: at most {caps[key]} values are allowed")

    def registered(self) -> dict[str, Any]:
        """The metadata to store and echo: registered claims, then language-tagged ones."""
        metadata: dict[str, Any] = self.get_registered_claims()
        metadata.update((k, v) for k, v in self.items() if _language_tagged(k))
        return metadata

    def validate_grant_types(self) -> None:
        """Array of grant types; defaults to ``DCR_DEFAULT_GRANT_TYPES``; each must be allowed."""
        if "grant_types" not in self:
            self["grant_types"] = list(self.settings.default_grant_types)
            how = " (the default when grant_types is omitted)"
        else:
            how = ""
        grants = _string_list(self["grant_types"], "grant_types")
        if not grants:
            raise _fail("grant_types", "must not be empty")
        self._check_allowed("grant_types", grants, self.settings.allowed_grant_types, how)

    def validate_response_types(self) -> None:
        """Array of response types, consistent with the grant types (RFC 7591 §2.1)."""
        grants = self["grant_types"]
        if "response_types" not in self:
            self["response_types"] = _flows.default_response_types(grants)
            how = " (derived from grant_types because response_types is omitted)"
        else:
            how = ""
        responses = _string_list(self["response_types"], "response_types")
        self._check_allowed("response_types", responses, self.settings.allowed_response_types, how)
        problem = _flows.inconsistency(grants, responses)
        if problem:
            raise _fail(
                "grant_types/response_types", f"inconsistent (RFC 7591 section 2.1): {problem}"
            )

    def validate_redirect_uris(self) -> None:
        """Required for redirect-based flows; each URI checked by :mod:`._uris`."""
        if "redirect_uris" not in self:
            if _flows.needs_redirect_uris(self["grant_types"]):
                raise InvalidRedirectURIError(
                    "redirect_uris: required for the authorization_code and implicit grants"
                )
            return
        value = redirect_uri_list("redirect_uris", self["redirect_uris"], self.settings)
        if not value and _flows.needs_redirect_uris(self["grant_types"]):
            raise InvalidRedirectURIError("redirect_uris: must not be empty for redirect flows")

    def validate_token_endpoint_auth_method(self) -> None:
        """Defaults to ``client_secret_basic``; must be allowed and fit the grant types."""
        if "token_endpoint_auth_method" not in self:
            self["token_endpoint_auth_method"] = DEFAULT_AUTH_METHOD
            how = " (the default when token_endpoint_auth_method is omitted)"
        else:
            how = ""
        method = _string(self["token_endpoint_auth_method"], "token_endpoint_auth_method")
        self._check_allowed(
            "token_endpoint_auth_method", [method], self.settings.allowed_auth_methods, how
        )
        # RFC 6749 §4.4: "The client credentials grant type MUST only be used by confidential
        # clients."
        if method == "none" and "client_credentials" in self["grant_types"]:
            raise _fail("token_endpoint_auth_method", "'none' cannot use client_credentials")
        if method == "private_key_jwt" and not ("jwks" in self or "jwks_uri" in self):
            raise _fail("token_endpoint_auth_method", "private_key_jwt needs jwks or jwks_uri")

    def validate_scope(self) -> None:
        """Space-separated RFC 6749 §3.3 scope tokens; defaults and allowlist from settings."""
        if "scope" not in self:
            if self.settings.default_scopes:
                self["scope"] = " ".join(self.settings.default_scopes)
            return
        scope = _string(self["scope"], "scope")
        tokens = scope.split(" ")
        if not all(_SCOPE_TOKEN.match(token) for token in tokens):
            raise _fail("scope", "must be scope tokens separated by single spaces")
        allowed = self.settings.allowed_scopes
        if allowed is not None:
            refused = [token for token in tokens if token not in allowed]
            if refused:
                raise _fail("scope", f"{_shown(refused[0])} is not allowed by this server")

    def validate_contacts(self) -> None:
        """Array of strings, typically e-mail addresses."""
        if "contacts" in self:
            _string_list(self["contacts"], "contacts")

    def validate_jwks_uri(self) -> None:
        """An https URL of the client's JWK Set; never together with ``jwks``."""
        if "jwks_uri" in self:
            if "jwks" in self:
                # RFC 7591 §2: "The jwks_uri and jwks parameters MUST NOT both be present"
                raise _fail("jwks", "jwks and jwks_uri must not both be present")
            self._check_url("jwks_uri", self["jwks_uri"], https_only=True)

    def validate_jwks(self) -> None:
        """A JWK Set object of public asymmetric keys only (RFC 7591 §2: "public keys")."""
        if "jwks" not in self:
            return
        jwks = self["jwks"]
        keys = jwks.get("keys") if isinstance(jwks, dict) else None
        if not isinstance(keys, list) or not keys or not all(isinstance(k, dict) for k in keys):
            raise _fail("jwks", "must be a JWK Set object with a non-empty keys array")
        for key in keys:
            kty = key.get("kty")
            if not isinstance(kty, str) or kty not in _ASYMMETRIC_KTY:
                raise _fail("jwks", "only public RSA, EC or OKP keys are accepted")
            if _PRIVATE_JWK_MEMBERS & key.keys():
                raise _fail("jwks", "must contain public keys only (private key members found)")
            if kty == "RSA" and _rsa_bits(key.get("n")) < _MIN_RSA_BITS:
                # Checked here, before joserfc, which only warns (a SecurityWarning that a server
                # run with -W error would turn into a 500).
                raise _fail("jwks", f"RSA keys must have at least {_MIN_RSA_BITS} bits")
        try:
            super().validate_jwks()
        except (JoseError, ValueError, TypeError, KeyError):
            raise _fail("jwks", "is not a valid JWK Set") from None

    def _validate_localized(self) -> None:
        for key, value in self.items():
            if _language_tagged(key):
                field = key.split("#", 1)[0]
                if field == "client_name":
                    _string(value, key)
                else:
                    self._check_url(key, value)
            elif "#" in key and key.split("#", 1)[0] in LOCALIZABLE:
                raise _fail(key, "has an invalid BCP 47 language tag")

    def _check_url(self, field: str, value: Any, *, https_only: bool = False) -> None:
        if value is None and field not in self:
            return
        problem = _uris.web_url_problem(_string(value, field), https_only=https_only)
        if problem:
            raise _fail(field, problem)

    @staticmethod
    def _check_allowed(field: str, values: list[str], allowed: tuple[str, ...], how: str) -> None:
        for value in values:
            if value not in allowed:
                raise _fail(
                    field,
                    f"{_shown(value)}{how} is not allowed by this server; "
                    f"allowed: {', '.join(allowed)}",
                )


_MIN_RSA_BITS = 2048  # NIST SP 800-131A; joserfc's own warning threshold


def _rsa_bits(modulus: Any) -> int:
    """The bit length of a JWK ``n`` (base64url, RFC 7518 §6.3.1.1); 0 when it is not one."""
    if not isinstance(modulus, str) or not modulus:
        return 0
    try:
        raw = base64.urlsafe_b64decode(modulus + "=" * (-len(modulus) % 4))
    except (ValueError, binascii.Error):
        return 0
    return int.from_bytes(raw, "big").bit_length()


def _language_tagged(key: str) -> bool:
    field, sep, tag = key.partition("#")
    return bool(sep) and field in LOCALIZABLE and bool(_LANGUAGE_TAG.match(tag))
