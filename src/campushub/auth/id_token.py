"""Verify the OpenID Connect ID token that the front door passes to the hub.

A shared secret proves only that a request came through the front door; a signed ID token
also says who signed in, and nobody can make one for another user without the provider's
key. The provider's issuer and keys come from its metadata (``.well-known/openid-configuration``),
fetched when first needed and again when a token names a key not seen before.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request

import jwt

#: asymmetric signatures only: "none" and shared-key (HS*) algorithms are never accepted
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
LEEWAY = 30  # seconds of clock difference allowed between the provider and the hub


class Unavailable(Exception):
    """The provider's metadata or keys could not be fetched."""


class InvalidToken(Exception):
    """The token is not one the provider signed for this hub, or it has expired (``expired``)."""

    def __init__(self, reason: str, expired: bool = False):
        super().__init__(reason)
        self.expired = expired


class IdTokenVerifier:
    """Checks signature, issuer, audience, expiry and issue time of ID tokens from one provider."""

    def __init__(self, metadata_url: str, audience: str):
        self.metadata_url = metadata_url
        self.audience = audience
        self._issuer: str | None = None
        self._keys: jwt.PyJWKClient | None = None

    def _load(self) -> jwt.PyJWKClient:
        with urllib.request.urlopen(self.metadata_url, timeout=10) as response:
            metadata = json.load(response)
        self._issuer = metadata["issuer"]
        self._keys = jwt.PyJWKClient(metadata["jwks_uri"], cache_keys=True, lifespan=3600, timeout=10)
        return self._keys

    def _verify(self, token: str) -> dict:
        try:
            keys = self._keys or self._load()
            key = keys.get_signing_key_from_jwt(token)
        except jwt.PyJWKClientConnectionError as e:
            raise Unavailable(str(e)) from None
        except (OSError, ValueError, KeyError) as e:
            raise Unavailable(f"{self.metadata_url}: {e}") from None
        except jwt.PyJWTError as e:  # malformed, or signed with a key the provider does not publish
            raise InvalidToken(str(e)) from None
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=ALGORITHMS,
                audience=self.audience,
                issuer=self._issuer,
                leeway=LEEWAY,
                options={"require": ["exp", "iat", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as e:
            raise InvalidToken(str(e), expired=True) from None
        except jwt.PyJWTError as e:
            raise InvalidToken(str(e)) from None
        # OpenID Connect Core 3.1.3.7: a token for several audiences must have been issued to this client (azp)
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if ("azp" in claims or len(audiences) > 1) and claims.get("azp") != self.audience:
            raise InvalidToken(f"the token was issued to {str(claims.get('azp'))[:80]!r}, not to {self.audience!r}")
        return claims

    async def claims(self, token: str) -> dict:
        """The token's claims once it is verified; raises :class:`InvalidToken` or :class:`Unavailable`."""
        return await asyncio.to_thread(self._verify, token)
