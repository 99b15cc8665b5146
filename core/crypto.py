"""Secrets at rest: MultiFernet, so keys can be rotated (new key first, old keys still decrypt)."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

UNDECRYPTABLE = (
    "A stored secret cannot be decrypted with ENCRYPTION_KEYS: was a key removed before "
    "`lipapush keys rotate` re-encrypted everything?"
)


class SecretBox:
    def __init__(self, keys: list[str]) -> None:
        self._fernet = MultiFernet([Fernet(k) for k in keys])

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise RuntimeError(UNDECRYPTABLE) from None

    def rotate(self, token: str) -> str:
        """Re-encrypt under the first (newest) key (any key may have encrypted it); running it again
        on its own output is harmless."""
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken:
            raise RuntimeError(UNDECRYPTABLE) from None


def mask_secret(value: str | None) -> str | None:
    """Show that a secret is set and which one (last 4), never the secret itself."""
    if not value:
        return None
    if len(value) <= 8:
        return "****"
    return "****" + value[-4:]
