# Sourced by the test scripts: a venv with aiosmtpd (a real SMTP server),
# pyotp (an independent TOTP implementation), standardwebhooks (the
# signatures' reference library) and zxing-cpp (a QR code reader, for the
# console's TOTP page), reinstalled when the requirements change.
# After `ensure_test_python`: USERHUB_TEST_SMTP_PYTHON, its interpreter.

ensure_test_python() {
    local venv="build/smtp-venv"
    if [[ ! -x "$venv/bin/python" ]] || ! cmp -s tests/smtp/requirements.txt "$venv/requirements.txt"; then
        echo "== installing the Python test tools (tests/smtp/requirements.txt) into $venv"
        python3 -m venv "$venv"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/smtp/requirements.txt
        cp tests/smtp/requirements.txt "$venv/requirements.txt"
    fi
    export USERHUB_TEST_SMTP_PYTHON="$PWD/$venv/bin/python"
}
