"""A Flask app with dynamic client registration added by wrapping ``app.wsgi_app``.

Run it from the repository root (``pip install flask '.[server]'``)::

    export DCR_REDIS_URL=redis://localhost:6379/0
    gunicorn --chdir examples flask_app:app

``POST /register`` is answered by the middleware before Flask sees the request; ``GET /`` and
the RFC 8414 metadata at ``/.well-known/oauth-authorization-server`` by Flask.
"""

from __future__ import annotations

from flask import Flask, Response, jsonify, request

from dcr_middleware import DCRWSGIMiddleware, Settings, authorization_server_metadata

settings = Settings.from_env()  # the DCR_* variables, read once

app = Flask(__name__)
app.wsgi_app = DCRWSGIMiddleware(app.wsgi_app, settings)  # POST /register never reaches Flask


@app.get("/")
def home() -> dict[str, str]:
    return {"message": "hello from the Flask app"}


@app.get("/.well-known/oauth-authorization-server")
def metadata() -> Response:
    """RFC 8414 authorization server metadata: ``registration_endpoint`` and the lists the
    registration policy allows come from the settings; add your server's own fields as keyword
    arguments (``jwks_uri=...``), or set ``DCR_SERVE_METADATA`` and drop this route."""
    base = (settings.issuer or request.host_url).rstrip("/")  # set DCR_ISSUER in production
    return jsonify(authorization_server_metadata(settings, issuer=base))
