//! TOTP codes computed by an independent implementation, pyotp, so that
//! the server's codes are never checked with the server's own code. The
//! Python comes from `USERHUB_TEST_SMTP_PYTHON`, as for the mail tests.

use std::process::Command;

/// The code of `secret` (base32) `steps` 30-second steps from now, as an
/// authenticator app shows it.
#[must_use]
pub fn code(secret: &str, steps: i64) -> String {
    run(
        "import pyotp, sys, time; print(pyotp.TOTP(sys.argv[1]).at(time.time() + 30 * int(sys.argv[2])))",
        &[secret, &steps.to_string()],
    )
}

/// The secret in an `otpauth://` URI, as pyotp parses it, with the issuer
/// and account name it reads.
#[must_use]
pub fn parse_uri(uri: &str) -> (String, String, String) {
    let out = run(
        "import pyotp, sys; t = pyotp.parse_uri(sys.argv[1]); print(t.secret); print(t.issuer); print(t.name)",
        &[uri],
    );
    let mut lines = out.lines().map(str::to_owned);
    let mut next = || lines.next().unwrap_or_default();
    (next(), next(), next())
}

/// Seconds left in the current 30-second step.
#[must_use]
pub fn seconds_left_in_step() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    30 - now % 30
}

fn run(script: &str, args: &[&str]) -> String {
    let output = Command::new(crate::smtp::python())
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running pyotp: {e}"));
    assert!(
        output.status.success(),
        "pyotp failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}
