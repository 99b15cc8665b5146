"""A signed-in session cannot be used to guess the account's password: the forms that ask for the
current one allow five tries per quarter hour."""

from __future__ import annotations

from contextlib import aclosing

from core.auth.passwords import verify_password
from core.auth.service import auth
from core.runtime import unit_of_work
from tests.conftest import LiveServer
from tests.support.factories import make_tenant
from tests.support.panel import business_client, form_post


async def test_current_password_guesses_are_limited(server: LiveServer) -> None:
    _, owner = await make_tenant(name="Guess Duka")
    client = await business_client(server.url, owner)
    async with aclosing(client):
        form = "/app/settings/account"
        for guess in range(5):
            r = await form_post(
                client,
                form,
                "/app/settings/account/password",
                {
                    "current_password": f"guess-{guess}",
                    "new_password": "new-pass-123456",
                    "confirm_password": "new-pass-123456",
                },
            )
            assert r.status_code == 422, r.text
            assert "The current password is wrong." in r.text
        # The sixth try is refused before the password is checked, even the right one.
        r = await form_post(
            client,
            form,
            "/app/settings/account/password",
            {
                "current_password": "secret-pass-1",
                "new_password": "new-pass-123456",
                "confirm_password": "new-pass-123456",
            },
        )
        assert r.status_code == 429
        assert "Too many tries with the current password. Wait 15 minutes, then try again." in r.text
        r = await form_post(
            client, form, "/app/settings/account/2fa", {"enabled": "off", "password": "secret-pass-1"}
        )
        assert r.status_code == 429
    async with unit_of_work(readonly=True) as session:
        user = await auth.get_user(session, owner.id)
        assert verify_password("secret-pass-1", user.password_hash)[0]  # unchanged
