"""A script written against the Python client that openapi-python-client
generates from the served /openapi.json, as a team would write one: register,
log in (JSON and the OAuth2 form), read and update one's profile, refresh,
turn on a second factor (codes from pyotp) and log in with it, read one's
events, log out; and the errors parsed as the documented bodies.

Run by scripts/client-test.sh with USERHUB_URL set and the generated
package on PYTHONPATH; exits non-zero on failure.
"""

import os
import time
import unittest
import uuid

import pyotp
from userhub_client import AuthenticatedClient, Client
from userhub_client.api.auth import login, login_mfa, me, refresh, register
from userhub_client.api.mfa import mfa_totp_begin, mfa_totp_confirm
from userhub_client.api.sessions import list_own_events, logout
from userhub_client.api.users import patch_user
from userhub_client.models import (
    CodeRequest,
    LoginForm,
    LoginJson,
    MfaLoginForm,
    MfaLoginRequest,
    MfaRequiredError,
    OAuthError,
    PasswordRequest,
    RefreshForm,
    RefreshRequest,
    RegisterRequest,
    TokenResponse,
    UpdateUserRequest,
    UserResponse,
)

BASE = os.environ.get("USERHUB_URL", "http://127.0.0.1:8000")
PASSWORD = "Quartz-Lantern-Orbit-47"


def anonymous() -> Client:
    return Client(base_url=BASE, raise_on_unexpected_status=True)


def signed_in(token: str) -> AuthenticatedClient:
    return AuthenticatedClient(base_url=BASE, token=token, raise_on_unexpected_status=True)


def new_user() -> tuple[str, str]:
    name = "py" + uuid.uuid4().hex[:10]
    email = f"{name}@example.com"
    created = register.sync(
        client=anonymous(),
        body=RegisterRequest(email=email, username=name, password=PASSWORD),
    )
    assert isinstance(created, UserResponse), created
    return name, email


class GeneratedClient(unittest.TestCase):
    def test_register_log_in_read_update_refresh_and_log_out(self):
        name, email = new_user()
        by_json = login.sync(client=anonymous(), body=LoginJson(email=email, password=PASSWORD))
        by_form = login.sync(client=anonymous(), body=LoginForm(username=name, password=PASSWORD))
        for tokens in (by_json, by_form):
            self.assertIsInstance(tokens, TokenResponse)
            self.assertEqual(tokens.token_type, "bearer")
        client = signed_in(by_form.access_token)
        user = me.sync(client=client)
        self.assertEqual(user.email, email)
        updated = patch_user.sync(
            user.id, client=client, body=UpdateUserRequest(full_name="Ada Lovelace")
        )
        self.assertEqual(updated.full_name, "Ada Lovelace")
        renewed = refresh.sync(
            client=anonymous(), body=RefreshRequest(refresh_token=by_json.refresh_token)
        )
        self.assertIsInstance(renewed, TokenResponse)
        again = refresh.sync(
            client=anonymous(),
            body=RefreshForm(grant_type="refresh_token", refresh_token=renewed.refresh_token),
        )
        self.assertIsInstance(again, TokenResponse)
        events = list_own_events.sync(client=client)
        self.assertTrue(any(e.type_ == "login.succeeded" for e in events.items))
        response = logout.sync_detailed(client=client)
        self.assertEqual(response.status_code, 204)

    def test_errors_are_parsed_as_the_documented_bodies(self):
        name, _ = new_user()
        wrong = login.sync(client=anonymous(), body=LoginForm(username=name, password="Not-it-1234"))
        self.assertIsInstance(wrong, OAuthError)
        self.assertEqual(wrong.error, "invalid_grant")
        spent = refresh.sync(client=anonymous(), body=RefreshRequest(refresh_token="nope"))
        self.assertIsInstance(spent, OAuthError)

    def test_a_second_factor_then_a_login_in_two_steps(self):
        name, _ = new_user()
        tokens = login.sync(client=anonymous(), body=LoginForm(username=name, password=PASSWORD))
        client = signed_in(tokens.access_token)
        enrolment = mfa_totp_begin.sync(client=client, body=PasswordRequest(current_password=PASSWORD))
        totp = pyotp.TOTP(enrolment.secret)
        if 30 - time.time() % 30 < 4:
            time.sleep(5)
        codes = mfa_totp_confirm.sync(client=client, body=CodeRequest(code=totp.now()))
        self.assertEqual(len(codes.recovery_codes), 10)
        for second_step in (MfaLoginRequest, MfaLoginForm):
            first = login.sync(client=anonymous(), body=LoginForm(username=name, password=PASSWORD))
            self.assertIsInstance(first, MfaRequiredError)
            self.assertEqual(first.error, "mfa_required")
            # A recovery code each time: a TOTP code works once per step.
            done = login_mfa.sync(
                client=anonymous(),
                body=second_step(mfa_token=first.mfa_token, code=codes.recovery_codes.pop()),
            )
            self.assertIsInstance(done, TokenResponse, done)


if __name__ == "__main__":
    unittest.main(verbosity=2)
