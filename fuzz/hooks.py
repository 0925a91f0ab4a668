"""Schemathesis hooks for UserHub's fuzz run (see scripts/fuzz.sh).

Authentication: a superuser's access token, fetched by logging in and
fetched again whenever a response is 401 (the fuzzer may log the session
out, end it, or the token may be refused for another reason).

The fuzzer learns ids from responses. The superuser whose credentials the
run logs in with is kept out of its reach: were its password changed or
the account deactivated, the run could not log in again.
"""

import os

import hypothesis
import requests
import schemathesis

# Hypothesis's target-guided optimiser (fed by Schemathesis's success-rate
# metric) now and then fails inside Hypothesis itself with "tuple index out of
# range" (hypothesis/internal/conjecture/optimiser.py, 6.170), ending the run
# with a runtime error that says nothing about the API. Without targeting the
# fuzzer still generates and checks every case, only unguided.
hypothesis.target = lambda *args, **kwargs: None

BASE_URL = os.environ["USERHUB_URL"]
EMAIL = os.environ["USERHUB_EMAIL"]
PASSWORD = os.environ["USERHUB_PASSWORD"]


def _login() -> str:
    response = requests.post(
        f"{BASE_URL}/api/auth/login",
        json={"email": EMAIL, "password": PASSWORD},
        timeout=30,
    )
    response.raise_for_status()
    return response.json()["access_token"]


def _own_id() -> str:
    response = requests.get(
        f"{BASE_URL}/api/auth/me",
        headers={"Authorization": f"Bearer {_login()}"},
        timeout=30,
    )
    response.raise_for_status()
    return response.json()["id"]


PROTECTED_ID = _own_id()


@schemathesis.auth(refresh_interval=60)
class SuperuserToken:
    def get(self, case, context):
        return _login()

    def set(self, case, data, context):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"


@schemathesis.hook
def filter_case(context, case):
    """Never aim a request at the account the run logs in with."""
    path_parameters = case.path_parameters or {}
    return str(path_parameters.get("id", "")).lower() != PROTECTED_ID
