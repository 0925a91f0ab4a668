// Passkeys in a real Chromium with its virtual authenticator (the DevTools
// protocol's WebAuthn domain): a page on the allowed origin
// (http://localhost:PASSKEY_ORIGIN_PORT, the server's WEBAUTHN_ORIGINS)
// registers a passkey, signs in with it, answers a TOTP user's
// `mfa_required` step with it, and the server refuses what it
// must: a replayed answer, a page on another origin, an unknown
// credential, a cloned authenticator whose counter went back, and a
// deactivated user. The page only runs the browser's WebAuthn calls; the
// test talks to the API itself, so nothing here checks our WebAuthn code
// with our own code.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { API, EMAIL, PASSWORD, launch, offline } from './browser.mjs';

const ORIGIN_PORT = Number(process.env.PASSKEY_ORIGIN_PORT);
assert.ok(ORIGIN_PORT, 'PASSKEY_ORIGIN_PORT must be set');

// A blank page: WebAuthn needs a secure context, which http://localhost is.
const PAGE = '<!doctype html><meta charset="utf-8"><title>passkeys</title>';
const pages = createServer((_, res) => {
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
  res.end(PAGE);
});
const otherPages = createServer((_, res) => {
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
  res.end(PAGE);
});

let browser;
before(async () => {
  await new Promise((ok) => pages.listen(ORIGIN_PORT, ok));
  await new Promise((ok) => otherPages.listen(0, ok));
  browser = await launch();
});
after(async () => {
  await browser?.close();
  pages.close();
  otherPages.close();
});

async function api(path, { method = 'POST', token, body } = {}) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(API + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

async function newUser(name) {
  const password = 'Passkey-Test-Password-42';
  const email = `${name}-${randomBytes(4).toString('hex')}@example.com`;
  const created = await api('/api/auth/register', {
    body: { email, username: email.split('@')[0], password },
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const login = await api('/api/auth/login', { body: { email, password } });
  assert.equal(login.status, 200);
  return { id: created.body.id, email, password, token: login.body.access_token };
}

/** A page on `port` with a fresh virtual authenticator (resident keys, user verification). */
async function pageWithAuthenticator(port = ORIGIN_PORT) {
  const context = await browser.newContext();
  await offline(context);
  const page = await context.newPage();
  await page.goto(`http://localhost:${port}/`);
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  return { context, page, cdp, authenticatorId };
}

/** navigator.credentials.create with the server's options, as a front end would. */
function create(page, publicKey) {
  return page.evaluate(async (json) => {
    const options = PublicKeyCredential.parseCreationOptionsFromJSON(json);
    const credential = await navigator.credentials.create({ publicKey: options });
    return credential.toJSON();
  }, publicKey);
}

/** navigator.credentials.get with the server's options. */
function get(page, publicKey) {
  return page.evaluate(async (json) => {
    const options = PublicKeyCredential.parseRequestOptionsFromJSON(json);
    const credential = await navigator.credentials.get({ publicKey: options });
    return credential.toJSON();
  }, publicKey);
}

async function register(page, user, name, rpId) {
  const options = await api('/api/auth/passkeys/register/options', {
    token: user.token,
    body: { current_password: user.password },
  });
  assert.equal(options.status, 200, JSON.stringify(options.body));
  const selection = options.body.publicKey.authenticatorSelection;
  assert.equal(selection.residentKey, 'required');
  assert.equal(selection.userVerification, 'required');
  if (rpId) options.body.publicKey.rp.id = rpId;
  const credential = await create(page, options.body.publicKey);
  const result = await api('/api/auth/passkeys/register', {
    token: user.token,
    body: { registration_token: options.body.registration_token, credential, name },
  });
  return { ...result, credential };
}

async function signIn(page) {
  const options = await api('/api/auth/passkeys/login/options');
  assert.equal(options.status, 200);
  assert.deepEqual(options.body.publicKey.allowCredentials ?? [], []);
  const credential = await get(page, options.body.publicKey);
  const answer = { login_token: options.body.login_token, credential };
  return { answer, result: await api('/api/auth/passkeys/login', { body: answer }) };
}

function claims(accessToken) {
  return JSON.parse(Buffer.from(accessToken.split('.')[1], 'base64url').toString());
}

test('a passkey registers, lists, signs in with amr pop+mfa, and is not replayed', async () => {
  const user = await newUser('pk');
  const { context, page } = await pageWithAuthenticator();
  try {
    const registered = await register(page, user);
    assert.equal(registered.status, 201, JSON.stringify(registered.body));
    assert.equal(registered.body.name, 'Passkey 1');
    const listed = await api('/api/auth/passkeys', { method: 'GET', token: user.token });
    assert.deepEqual(listed.body.map((k) => k.id), [registered.body.id]);

    // Registering the same authenticator again is refused by the browser
    // itself (excludeCredentials lists it).
    const again = await api('/api/auth/passkeys/register/options', {
      token: user.token,
      body: { current_password: user.password },
    });
    assert.equal(again.body.publicKey.excludeCredentials.length, 1);
    await assert.rejects(create(page, again.body.publicKey), /InvalidStateError|excluded/);

    // The same credential registered again (its answer replayed with a
    // fresh token): 409, though the challenge would fail too.
    const replayed = await api('/api/auth/passkeys/register', {
      token: user.token,
      body: { registration_token: again.body.registration_token, credential: registered.credential },
    });
    assert.equal(replayed.status, 409, JSON.stringify(replayed.body));

    const { answer, result } = await signIn(page);
    assert.equal(result.status, 200, JSON.stringify(result.body));
    assert.deepEqual(claims(result.body.access_token).amr, ['pop', 'mfa']);
    const me = await api('/api/auth/me', { method: 'GET', token: result.body.access_token });
    assert.equal(me.body.id, user.id);
    const used = await api('/api/auth/passkeys', { method: 'GET', token: user.token });
    assert.ok(used.body[0].last_used_at, 'last_used_at is set');

    // The same answer again: the login token is spent.
    const replay = await api('/api/auth/passkeys/login', { body: answer });
    assert.equal(replay.status, 401);
    assert.equal(replay.body.detail, 'Invalid passkey');
    assert.equal(replay.body.error, 'invalid_grant');
    // The same answer with a fresh token: another challenge.
    const fresh = await api('/api/auth/passkeys/login/options');
    const stale = await api('/api/auth/passkeys/login', {
      body: { login_token: fresh.body.login_token, credential: answer.credential },
    });
    assert.equal(stale.status, 401);

    // Renamed, then removed (the password remains a way in).
    const renamed = await api(`/api/auth/passkeys/${registered.body.id}`, {
      method: 'PATCH', token: user.token, body: { name: 'Laptop' },
    });
    assert.equal(renamed.body.name, 'Laptop');
    const removed = await api(`/api/auth/passkeys/${registered.body.id}`, {
      method: 'DELETE', token: user.token,
    });
    assert.equal(removed.status, 204);
    const gone = await signIn(page);
    assert.equal(gone.result.status, 401, 'a removed passkey signs nobody in');
  } finally {
    await context.close();
  }
});

test('registration needs the current password and a registration token of the caller', async () => {
  const user = await newUser('pkpw');
  const other = await newUser('pkother');
  const { context, page } = await pageWithAuthenticator();
  try {
    const missing = await api('/api/auth/passkeys/register/options', { token: user.token, body: {} });
    assert.equal(missing.status, 422);
    const wrong = await api('/api/auth/passkeys/register/options', {
      token: user.token, body: { current_password: 'not-the-password' },
    });
    assert.equal(wrong.status, 400);
    // Another user's registration token finishes nothing for this one.
    const options = await api('/api/auth/passkeys/register/options', {
      token: other.token, body: { current_password: other.password },
    });
    const credential = await create(page, options.body.publicKey);
    const stolen = await api('/api/auth/passkeys/register', {
      token: user.token,
      body: { registration_token: options.body.registration_token, credential },
    });
    assert.equal(stolen.status, 400);
    assert.equal(stolen.body.detail, 'Invalid passkey');
  } finally {
    await context.close();
  }
});

test('a credential made for another RP ID is refused', async () => {
  // other.localhost is an allowed origin (it is under the RP ID localhost),
  // and the page asks its browser for a credential of RP ID other.localhost.
  const user = await newUser('pkrpid');
  const context = await browser.newContext();
  try {
    await offline(context);
    const page = await context.newPage();
    await page.goto(`http://other.localhost:${ORIGIN_PORT}/`);
    const cdp = await context.newCDPSession(page);
    await cdp.send('WebAuthn.enable');
    await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: {
        protocol: 'ctap2', transport: 'internal', hasResidentKey: true,
        hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true,
      },
    });
    const registered = await register(page, user, undefined, 'other.localhost');
    assert.equal(registered.status, 400, JSON.stringify(registered.body));
    assert.equal(registered.body.detail, 'Invalid passkey');
  } finally {
    await context.close();
  }
});

test('a ceremony from an origin the server does not allow is refused', async () => {
  const user = await newUser('pkorigin');
  const { context, page } = await pageWithAuthenticator(otherPages.address().port);
  try {
    const registered = await register(page, user);
    assert.equal(registered.status, 400);
    assert.equal(registered.body.detail, 'Invalid passkey');
  } finally {
    await context.close();
  }
});

test('an unknown credential, a cloned authenticator and a deactivated user do not sign in', async () => {
  const user = await newUser('pkclone');
  const { context, page, cdp, authenticatorId } = await pageWithAuthenticator();
  try {
    assert.equal((await register(page, user)).status, 201);
    assert.equal((await signIn(page)).result.status, 200);
    assert.equal((await signIn(page)).result.status, 200);
    const [original] = (await cdp.send('WebAuthn.getCredentials', { authenticatorId })).credentials;
    assert.ok(original.signCount >= 2, `the authenticator counts: ${original.signCount}`);

    // A clone: the same key, its counter behind the server's.
    await cdp.send('WebAuthn.removeCredential', { authenticatorId, credentialId: original.credentialId });
    await cdp.send('WebAuthn.addCredential', {
      authenticatorId, credential: { ...original, signCount: 0 },
    });
    const cloned = await signIn(page);
    assert.equal(cloned.result.status, 401);
    assert.equal(cloned.result.body.detail, 'Invalid passkey');

    // A credential the server never registered.
    await cdp.send('WebAuthn.clearCredentials', { authenticatorId });
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    await cdp.send('WebAuthn.addCredential', {
      authenticatorId,
      credential: {
        credentialId: randomBytes(16).toString('base64'),
        isResidentCredential: true,
        rpId: 'localhost',
        privateKey: privateKey.export({ format: 'der', type: 'pkcs8' }).toString('base64'),
        userHandle: Buffer.from(user.id.replaceAll('-', ''), 'hex').toString('base64'),
        signCount: 0,
      },
    });
    const unknown = await signIn(page);
    assert.equal(unknown.result.status, 401);

    // The original, after its owner is deactivated.
    await cdp.send('WebAuthn.clearCredentials', { authenticatorId });
    await cdp.send('WebAuthn.addCredential', {
      authenticatorId, credential: { ...original, signCount: original.signCount + 10 },
    });
    assert.equal((await signIn(page)).result.status, 200, 'the original still signs in');
    const root = await api('/api/auth/login', { body: { email: EMAIL, password: PASSWORD } });
    const deactivated = await api(`/api/users/${user.id}`, {
      method: 'DELETE', token: root.body.access_token,
    });
    assert.equal(deactivated.status, 204);
    const inactive = await signIn(page);
    assert.equal(inactive.result.status, 401);

    // The clone was audited.
    const events = await api(`/api/audit-events?user_id=${user.id}&type=passkey.counter_regressed`, {
      method: 'GET', token: root.body.access_token,
    });
    assert.equal(events.status, 200, JSON.stringify(events.body));
    assert.equal(events.body.items.length, 1);
  } finally {
    await context.close();
  }
});

test('a superuser removes a user\'s passkeys and ends their sessions', async () => {
  const user = await newUser('pkadmin');
  const { context, page } = await pageWithAuthenticator();
  try {
    assert.equal((await register(page, user)).status, 201);
    const root = await api('/api/auth/login', { body: { email: EMAIL, password: PASSWORD } });
    const refused = await api(`/api/users/${user.id}/passkeys`, { method: 'DELETE', token: user.token });
    assert.equal(refused.status, 403);
    const removed = await api(`/api/users/${user.id}/passkeys`, {
      method: 'DELETE', token: root.body.access_token,
    });
    assert.equal(removed.status, 204);
    const me = await api('/api/auth/me', { method: 'GET', token: user.token });
    assert.equal(me.status, 401, 'their sessions ended');
    assert.equal((await signIn(page)).result.status, 401);
  } finally {
    await context.close();
  }
});

/** The current TOTP code of `secret`, from pyotp (an independent implementation). */
function totp(secret) {
  const python = process.env.USERHUB_TEST_SMTP_PYTHON ?? '../../build/smtp-venv/bin/python';
  return execFileSync(python, ['-c', 'import pyotp, sys; print(pyotp.TOTP(sys.argv[1]).now())', secret])
    .toString()
    .trim();
}

test('a passkey answers the mfa_required step of a TOTP user', async () => {
  const user = await newUser('pkmfa');
  const { context, page } = await pageWithAuthenticator();
  try {
    const begun = await api('/api/auth/mfa/totp', {
      token: user.token, body: { current_password: user.password },
    });
    assert.equal(begun.status, 200, JSON.stringify(begun.body));
    const confirmed = await api('/api/auth/mfa/totp/confirm', {
      token: user.token, body: { code: totp(begun.body.secret) },
    });
    assert.equal(confirmed.status, 200, JSON.stringify(confirmed.body));

    // No passkey yet: the 403 has no passkey options.
    const before = await api('/api/auth/login', { body: { email: user.email, password: user.password } });
    assert.equal(before.status, 403);
    assert.equal(before.body.passkey, undefined);

    const registered = await register(page, user);
    assert.equal(registered.status, 201, JSON.stringify(registered.body));
    const [credential] = (await api('/api/auth/passkeys', { method: 'GET', token: user.token })).body;

    const challenge = await api('/api/auth/login', { body: { email: user.email, password: user.password } });
    assert.equal(challenge.status, 403);
    assert.equal(challenge.body.error, 'mfa_required');
    const options = challenge.body.passkey;
    assert.ok(options, 'the 403 offers the passkeys');
    assert.equal(options.userVerification, 'required');
    assert.equal(options.allowCredentials.length, 1);
    assert.ok(credential.id);

    const answer = await get(page, options);
    const signedIn = await api('/api/auth/login/mfa', {
      body: { mfa_token: challenge.body.mfa_token, credential: answer },
    });
    assert.equal(signedIn.status, 200, JSON.stringify(signedIn.body));
    assert.deepEqual(claims(signedIn.body.access_token).amr, ['pwd', 'pop']);

    // The mfa_token is spent: the same answer again is refused.
    const again = await api('/api/auth/login/mfa', {
      body: { mfa_token: challenge.body.mfa_token, credential: answer },
    });
    assert.equal(again.status, 401);
    assert.equal(again.body.error, 'invalid_grant');
    // A code still answers a new challenge (a recovery code: the app's
    // current one was spent confirming).
    const next = await api('/api/auth/login', { body: { email: user.email, password: user.password } });
    const byCode = await api('/api/auth/login/mfa', {
      body: { mfa_token: next.body.mfa_token, code: confirmed.body.recovery_codes[0] },
    });
    assert.equal(byCode.status, 200, JSON.stringify(byCode.body));
    assert.deepEqual(claims(byCode.body.access_token).amr, ['pwd', 'otp']);
  } finally {
    await context.close();
  }
});
