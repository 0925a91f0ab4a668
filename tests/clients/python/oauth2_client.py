"""UserHub through authlib's OAuth2Session, as an OAuth2 client would use it:
the password grant, refresh_token(), and errors raised as OAuth2 errors; and
a second factor driven with pyotp (an independent TOTP implementation):
enrolment, the password grant surfacing `mfa_required`, the second step,
replay, recovery codes and turning it off; and a personal access token
used as a script would (its checksum checked with Python's own CRC-32).

Run by scripts/client-test.sh with USERHUB_URL set; exits non-zero on failure.
"""

import os
import sys
import unittest
import uuid
import zlib

import time

import pyotp
import requests
from authlib.integrations.requests_client import OAuth2Session, OAuthError

BASE = os.environ.get("USERHUB_URL", "http://127.0.0.1:8000")
TOKEN_URL = f"{BASE}/api/auth/login"
REFRESH_URL = f"{BASE}/api/auth/refresh"
PASSWORD = "Quartz-Lantern-Orbit-47"


def register_with_token() -> tuple[str, str]:
    email = register()
    token = OAuth2Session(token_endpoint=TOKEN_URL).fetch_token(
        TOKEN_URL, username=email, password=PASSWORD
    )
    return email, token["access_token"]


def fresh_step() -> None:
    """Waits for a new 30-second step if this one is about to end."""
    left = 30 - time.time() % 30
    if left < 4:
        time.sleep(left + 1)


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


class SecondFactor(unittest.TestCase):
    def enable(self, access: str) -> tuple[pyotp.TOTP, list[str]]:
        auth = {"Authorization": f"Bearer {access}"}
        response = requests.post(
            f"{BASE}/api/auth/mfa/totp",
            json={"current_password": PASSWORD},
            headers=auth,
            timeout=10,
        )
        self.assertEqual(response.status_code, 200, response.text)
        totp = pyotp.parse_uri(response.json()["otpauth_uri"])
        self.assertEqual(totp.secret, response.json()["secret"])
        fresh_step()
        response = requests.post(
            f"{BASE}/api/auth/mfa/totp/confirm",
            json={"code": totp.now()},
            headers=auth,
            timeout=10,
        )
        self.assertEqual(response.status_code, 200, response.text)
        codes = response.json()["recovery_codes"]
        self.assertEqual(len(codes), 10)
        return totp, codes

    def mfa_token(self, email: str) -> str:
        client = OAuth2Session(token_endpoint=TOKEN_URL)
        with self.assertRaises(OAuthError) as raised:
            client.fetch_token(TOKEN_URL, username=email, password=PASSWORD)
        self.assertEqual(raised.exception.error, "mfa_required")
        self.assertIsNone(client.token)
        # authlib keeps only the standard fields; the token is in the body.
        response = requests.post(
            TOKEN_URL,
            data={"grant_type": "password", "username": email, "password": PASSWORD},
            timeout=10,
        )
        self.assertEqual(response.status_code, 403, response.text)
        return response.json()["mfa_token"]

    def second_step(self, mfa_token: str, code: str) -> requests.Response:
        return requests.post(
            f"{BASE}/api/auth/login/mfa",
            data={"mfa_token": mfa_token, "code": code},
            timeout=10,
        )

    def test_enrol_log_in_with_codes_and_turn_it_off(self):
        email, access = register_with_token()
        totp, codes = self.enable(access)
        # The confirming code is spent; the next step's code works once.
        token = self.mfa_token(email)
        replay = self.second_step(token, totp.now())
        self.assertEqual(replay.status_code, 401, replay.text)
        self.assertEqual(replay.json()["error"], "invalid_grant")
        later = totp.at(time.time() + 30)
        response = self.second_step(token, later)
        self.assertEqual(response.status_code, 200, response.text)
        tokens = response.json()
        self.assertEqual(tokens["token_type"], "bearer")
        session = OAuth2Session(token=tokens)
        self.assertEqual(session.get(f"{BASE}/api/auth/me", timeout=10).status_code, 200)
        # A recovery code works once.
        response = self.second_step(self.mfa_token(email), codes[0])
        self.assertEqual(response.status_code, 200, response.text)
        response = self.second_step(self.mfa_token(email), codes[0])
        self.assertEqual(response.status_code, 401, response.text)
        # Off with the password and a recovery code: the password grant works again.
        response = requests.post(
            f"{BASE}/api/auth/mfa/totp/disable",
            json={"current_password": PASSWORD, "code": codes[1]},
            headers={"Authorization": f"Bearer {access}"},
            timeout=10,
        )
        self.assertEqual(response.status_code, 204, response.text)
        client = OAuth2Session(token_endpoint=TOKEN_URL)
        self.assertIn(
            "access_token",
            client.fetch_token(TOKEN_URL, username=email, password=PASSWORD),
        )


BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def base62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        digits.append(BASE62[digit])
    assert number == 0
    return "".join(reversed(digits))


class PersonalAccessToken(unittest.TestCase):
    """A script's flow: a person makes a token once with their password;
    a cron job then calls the API with nothing but that token."""

    def test_a_script_calls_the_api_with_a_token(self):
        email, access = register_with_token()
        made = requests.post(
            f"{BASE}/api/auth/tokens",
            json={
                "name": "nightly export",
                "scopes": ["profile:read", "users:read"],
                "expires_in_days": 7,
                "current_password": PASSWORD,
            },
            headers={"Authorization": f"Bearer {access}"},
            timeout=10,
        )
        self.assertEqual(made.status_code, 201, made.text)
        token = made.json()["token"]
        # The documented format, checked here with Python's own CRC-32.
        self.assertRegex(token, r"^uhp_[0-9A-Za-z]{49}$")
        body, check = token[4:47], token[47:]
        self.assertEqual(check, base62(zlib.crc32(body.encode()), 6))

        script = requests.Session()
        script.headers["Authorization"] = f"Bearer {token}"
        me = script.get(f"{BASE}/api/auth/me", timeout=10)
        self.assertEqual(me.status_code, 200, me.text)
        self.assertEqual(me.json()["email"], email)
        page = script.get(f"{BASE}/api/users", params={"limit": 5}, timeout=10)
        self.assertEqual(page.status_code, 200, page.text)
        refused = script.get(f"{BASE}/api/auth/events", timeout=10)
        self.assertEqual(refused.status_code, 403)
        self.assertEqual(
            refused.json(),
            {"detail": "Insufficient scope", "required_scope": "audit:read"},
        )
        # The script retires its own token.
        revoked = script.delete(
            f"{BASE}/api/auth/tokens/{made.json()['id']}", timeout=10
        )
        self.assertEqual(revoked.status_code, 204)
        self.assertEqual(script.get(f"{BASE}/api/auth/me", timeout=10).status_code, 401)


if __name__ == "__main__":
    result = unittest.main(exit=False, verbosity=2).result
    sys.exit(0 if result.wasSuccessful() else 1)
