"""A real OpenID Connect provider on loopback for the tests, built with Authlib's server side: the
authorization code flow with a nonce, RS256-signed ID tokens, discovery and JWKS. It stands for a
council's identity provider (Microsoft Entra ID, say); nothing about the tokens is mocked.

Its sign-in page asks only for the email address of the person signing in, as a test user would
have it; the people it knows are given when it starts.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.models import ClientMixin
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDCode
from authlib.oidc.core.models import AuthorizationCodeMixin
from flask import Flask, jsonify, request
from joserfc.jwk import KeySet, RSAKey
from werkzeug.serving import make_server


@dataclass
class Client(ClientMixin):  # type: ignore[misc]
    client_id: str
    client_secret: str
    redirect_uri: str

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_allowed_scope(self, scope: str) -> str:
        return " ".join(s for s in (scope or "").split() if s in ("openid", "email", "profile"))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri == self.redirect_uri

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.compare_digest(client_secret, self.client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass
class Code(AuthorizationCodeMixin):  # type: ignore[misc]
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: dict[str, str]
    nonce: str | None
    auth_time: int = field(default_factory=lambda: int(time.time()))

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> str:
        return "0"

    def get_amr(self) -> list[str]:
        return ["pwd", "mfa"]


class Provider:
    def __init__(self, port: int, client: Client, people: dict[str, str]):
        self.issuer = f"http://127.0.0.1:{port}"
        self.client = client
        self.people = people  # email -> name
        self.codes: dict[str, Code] = {}
        self.nonces: set[str] = set()
        self.key = RSAKey.generate_key(2048, parameters={"kid": "test-key", "use": "sig"}, private=True)
        self.app = self._app()
        self._server = make_server("127.0.0.1", port, self.app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> Provider:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()

    def _app(self) -> Flask:
        provider = self
        app = Flask("oidc-provider")
        app.config["SECRET_KEY"] = secrets.token_hex(16)

        class CodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
            TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

            def save_authorization_code(self, code: str, req: Any) -> None:
                provider.codes[code] = Code(
                    code, req.client.client_id, req.payload.redirect_uri, req.scope, req.user,
                    req.payload.data.get("nonce"),
                )  # fmt: skip

            def query_authorization_code(self, code: str, client: Client) -> Code | None:
                found = provider.codes.get(code)
                return found if found is not None and found.client_id == client.client_id else None

            def delete_authorization_code(self, authorization_code: Code) -> None:
                provider.codes.pop(authorization_code.code, None)

            def authenticate_user(self, authorization_code: Code) -> dict[str, str]:
                return authorization_code.user

        class OpenID(OpenIDCode):  # type: ignore[misc]
            def exists_nonce(self, nonce: str, req: Any) -> bool:
                if nonce in provider.nonces:
                    return True
                provider.nonces.add(nonce)
                return False

            def resolve_client_private_key(self, client: Client) -> Any:
                return provider.key

            def get_client_algorithm(self, client: Client) -> str:
                return "RS256"

            def get_encode_header(self, client: Client) -> dict[str, str]:
                return {"alg": "RS256", "kid": "test-key"}

            def get_client_claims(self, client: Client) -> dict[str, Any]:
                return {"iss": provider.issuer, "aud": [client.client_id]}

            def generate_user_info(self, user: dict[str, str], scope: str) -> UserInfo:
                return UserInfo(sub=user["email"], email=user["email"], email_verified=True, name=user["name"])

        server = AuthorizationServer(
            app,
            query_client=lambda cid: provider.client if cid == provider.client.client_id else None,
            save_token=lambda token, req: None,
        )
        server.register_grant(CodeGrant, [OpenID(require_nonce=True)])

        @app.route("/.well-known/openid-configuration")
        def discovery() -> Any:
            return jsonify(
                issuer=provider.issuer,
                authorization_endpoint=f"{provider.issuer}/authorize",
                token_endpoint=f"{provider.issuer}/token",
                jwks_uri=f"{provider.issuer}/jwks",
                response_types_supported=["code"],
                subject_types_supported=["public"],
                id_token_signing_alg_values_supported=["RS256"],
                scopes_supported=["openid", "email", "profile"],
                token_endpoint_auth_methods_supported=["client_secret_basic", "client_secret_post"],
                claims_supported=["sub", "email", "name"],
            )

        @app.route("/jwks")
        def jwks() -> Any:
            return jsonify(KeySet([provider.key]).as_dict(private=False))

        @app.route("/authorize", methods=["GET", "POST"])
        def authorize() -> Any:
            if request.method == "GET":
                hidden = "".join(f'<input type="hidden" name="{k}" value="{v}">' for k, v in request.args.items())
                return (
                    '<!DOCTYPE html><html lang="en"><head><title>Council sign-in</title></head><body><main>'
                    '<h1>Council sign-in</h1><form method="post" action="/authorize?'
                    + request.query_string.decode()
                    + '"><label for="email">Work email</label><input id="email" name="email">'
                    + hidden
                    + '<button type="submit">Sign in</button></form></main></body></html>'
                )
            email = request.form.get("email", "").strip().lower()
            if email not in provider.people:
                return "<p>No such account</p>", 403
            return server.create_authorization_response(grant_user={"email": email, "name": provider.people[email]})

        @app.route("/token", methods=["POST"])
        def token() -> Any:
            return server.create_token_response()

        return app
