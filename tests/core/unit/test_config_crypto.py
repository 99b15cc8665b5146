from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from core.config import SettingsError, load_settings
from core.crypto import SecretBox, mask_secret


class TestSettings:
    def test_bad_variable_is_named(self) -> None:
        with pytest.raises(SettingsError) as info:
            load_settings(ENCRYPTION_KEYS="not-a-key", DATABASE_URL="mysql://x")
        text = str(info.value)
        assert "ENCRYPTION_KEYS: key #1 is not a Fernet key" in text
        assert "DATABASE_URL:" in text

    def test_production_refuses_development_secrets(self) -> None:
        with pytest.raises(SettingsError) as info:
            load_settings(APP_ENV="production", PUBLIC_BASE_URL="https://pay.example.com")
        assert "SECRET_KEY" in str(info.value)

    def test_production_requires_the_africas_talking_callback_secret(self) -> None:
        good = {
            "APP_ENV": "production",
            "PUBLIC_BASE_URL": "https://pay.example.com",
            "SECRET_KEY": "x" * 40,
            "ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        }
        with pytest.raises(SettingsError) as info:
            load_settings(**good)
        assert "AT_CALLBACK_SECRET: required in production" in str(info.value)
        assert load_settings(**good, AT_CALLBACK_SECRET="s" * 20).AT_CALLBACK_SECRET == "s" * 20

    def test_plain_postgres_url_gets_async_driver(self) -> None:
        s = load_settings(DATABASE_URL="postgresql://u@h:5432/db")
        assert s.DATABASE_URL == "postgresql+asyncpg://u@h:5432/db"

    def test_keys_split_on_commas(self) -> None:
        k1, k2 = Fernet.generate_key().decode(), Fernet.generate_key().decode()
        assert [k1, k2] == load_settings(ENCRYPTION_KEYS=f"{k1}, {k2}").ENCRYPTION_KEYS


class TestSecretBox:
    def test_rotation_old_key_still_decrypts_and_rotate_moves_to_new(self) -> None:
        old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
        token = SecretBox([old]).encrypt("consumer-secret")
        rotated_box = SecretBox([new, old])
        assert rotated_box.decrypt(token) == "consumer-secret"
        rotated = rotated_box.rotate(token)
        assert SecretBox([new]).decrypt(rotated) == "consumer-secret"

    def test_unknown_key_error_does_not_leak(self) -> None:
        token = SecretBox([Fernet.generate_key().decode()]).encrypt("s3cr3t-value")
        with pytest.raises(RuntimeError) as info:
            SecretBox([Fernet.generate_key().decode()]).decrypt(token)
        assert "s3cr3t" not in str(info.value)

    def test_mask(self) -> None:
        assert mask_secret("abcdefghijkl") == "****ijkl"
        assert mask_secret("short") == "****"
        assert mask_secret(None) is None
