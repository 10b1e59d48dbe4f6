"""`minimess token`: a token signed as a server started with --auth-secret-file checks it."""

from __future__ import annotations

from minimess.adapters.jwt_tokens import HS256Tokens
from minimess.app.settings import TokenSettings
from minimess.domain.model import Uid


def mint_token(settings: TokenSettings) -> str:
    """A token for `settings.uid`, signed with the secret in `settings.secret_file` (SecretFileError)."""
    tokens = HS256Tokens.from_file(settings.secret_file)
    return tokens.mint(
        Uid(settings.uid), settings.lifetime, settings.subscribe_patterns, settings.publish_patterns
    )
