"""The Django wiring shown in docs/protecting.md: Authlib's Django ``AuthorizationServer`` with
``query_client`` overridden by ``integrations.authlib.query_client`` finds registered clients.

Run in a fresh interpreter: ``django.conf.settings`` can be configured once per process.
"""

from __future__ import annotations

import subprocess
import sys

CODE = """
import json, secrets, time
import django
from django.conf import settings
settings.configure(AUTHLIB_OAUTH2_PROVIDER={}, INSTALLED_APPS=[], DATABASES={})
django.setup()
from authlib.integrations.django_oauth2 import AuthorizationServer
from dcr_middleware import ClientStore, Settings
from dcr_middleware.integrations import authlib as dcr_authlib
from dcr_middleware.core.registration import prepare_registration

clients = ClientStore(Settings(key_prefix="django-doc"))
lookup = dcr_authlib.query_client(clients)


class DCRAuthorizationServer(AuthorizationServer):
    def query_client(self, client_id):
        return lookup(client_id)


new = prepare_registration(
    json.dumps({"redirect_uris": ["https://app.example.com/cb"]}).encode(),
    clients.settings, now=int(time.time()), token=secrets.token_urlsafe,
)
clients.create(new.client)
server = DCRAuthorizationServer(client_model=None, token_model=None)
found = server.query_client(new.client_id)
print(json.dumps({
    "id": found.get_client_id() == new.client_id,
    "redirect": found.check_redirect_uri("https://app.example.com/cb"),
    "secret": found.check_client_secret(new.response["client_secret"]),
    "unknown": server.query_client("no-such-client") is None,
}))
"""


def test_django_authorization_server_reads_registered_clients() -> None:
    done = subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning:dcr_middleware", "-c", CODE],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == (
        '{"id": true, "redirect": true, "secret": true, "unknown": true}'
    )
