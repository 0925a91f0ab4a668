"""UserHub through authlib's OAuth2Session, as an OAuth2 client would use it:
the password grant, refresh_token(), and errors raised as OAuth2 errors.

Run by scripts/client-test.sh with USERHUB_URL set; exits non-zero on failure.
"""

import os
import sys
import unittest
import uuid

import requests
from authlib.integrations.requests_client import OAuth2Session, OAuthError

BASE = os.environ.get("USERHUB_URL", "http://127.0.0.1:8000")
TOKEN_URL = f"{BASE}/api/auth/login"
REFRESH_URL = f"{BASE}/api/auth/refresh"
PASSWORD = "Quartz-Lantern-Orbit-47"


def register() -> str:
    suffix = uuid.uuid4().hex[:10]
    email = f"oauth2-{suffix}@example.com"
    response = requests.post(
        f"{BASE}/api/auth/register",
        json={"email": email, "username": f"oauth2_{suffix}", "password": PASSWORD},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    return email


class PasswordGrant(unittest.TestCase):
    def test_fetch_token_then_call_the_api(self):
        email = register()
        client = OAuth2Session(token_endpoint=TOKEN_URL)
        token = client.fetch_token(TOKEN_URL, username=email, password=PASSWORD)
        self.assertEqual(token["token_type"], "bearer")
        self.assertIn("refresh_token", token)
        self.assertGreater(token["expires_at"], 0)
        me = client.get(f"{BASE}/api/auth/me", timeout=10)
        self.assertEqual(me.status_code, 200, me.text)
        self.assertEqual(me.json()["email"], email)

    def test_refresh_token_rotates_and_the_spent_one_is_an_oauth2_error(self):
        email = register()
        client = OAuth2Session(token_endpoint=TOKEN_URL)
        first = dict(client.fetch_token(TOKEN_URL, username=email, password=PASSWORD))
        second = client.refresh_token(REFRESH_URL)
        self.assertNotEqual(second["access_token"], first["access_token"])
        self.assertNotEqual(second["refresh_token"], first["refresh_token"])
        self.assertEqual(client.get(f"{BASE}/api/auth/me", timeout=10).status_code, 200)
        with self.assertRaises(OAuthError) as raised:
            client.refresh_token(REFRESH_URL, refresh_token=first["refresh_token"])
        self.assertEqual(raised.exception.error, "invalid_grant")

    def test_a_wrong_password_raises_instead_of_becoming_a_token(self):
        email = register()
        client = OAuth2Session(token_endpoint=TOKEN_URL)
        with self.assertRaises(OAuthError) as raised:
            client.fetch_token(TOKEN_URL, username=email, password="not the password")
        self.assertEqual(raised.exception.error, "invalid_grant")
        self.assertTrue(raised.exception.description)
        self.assertIsNone(client.token)

    def test_an_unknown_grant_type_is_unsupported_grant_type(self):
        response = requests.post(
            TOKEN_URL,
            data={"grant_type": "client_credentials", "username": "a", "password": "b"},
            timeout=10,
        )
        self.assertEqual(response.status_code, 422, response.text)
        self.assertEqual(response.json()["error"], "unsupported_grant_type")


if __name__ == "__main__":
    result = unittest.main(exit=False, verbosity=2).result
    sys.exit(0 if result.wasSuccessful() else 1)
