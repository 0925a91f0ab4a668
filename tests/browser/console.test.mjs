// The console at /admin/ in Chromium, against the real server (on
// PostgreSQL in scripts/browser-test.sh): a superuser finds, deactivates,
// restores and edits a user (and sees the 412 after another change), resets
// a second factor; a user turns TOTP on from the page's secret (codes from
// pyotp), adds a passkey with Chromium's virtual authenticator, signs out
// and back in with it and with a code, makes and revokes an access token;
// a provider sign-in with a real OpenID provider. Every page is checked by
// axe-core, the browser must report no CSP violation, the main flow runs
// with the keyboard alone, and the layout holds at 360 px.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { ARTIFACTS, EMAIL, PASSWORD, launch, offline } from './browser.mjs';

const PORT = Number(process.env.CONSOLE_PORT);
assert.ok(PORT, 'CONSOLE_PORT must be set (the server listens on it)');
/** The console's origin: WebAuthn needs a domain, so localhost. */
const ORIGIN = `http://localhost:${PORT}`;
const API = ORIGIN;
const PROVIDER = process.env.OAUTH_PROVIDER_NAME;
const PYTHON = process.env.PYOTP_PYTHON ?? 'python3';
/** Screenshots of the main pages go here too when set (docs/console). */
const SCREENSHOTS = process.env.CONSOLE_SCREENSHOTS;
const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

/** The API from outside the browser: the test's own view of the truth. */
async function api(path, { method = 'GET', token, body, headers = {} } = {}) {
  const all = { ...headers };
  if (body !== undefined) all['content-type'] = 'application/json';
  if (token) all.authorization = `Bearer ${token}`;
  const res = await fetch(API + path, { method, headers: all, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null, headers: res.headers };
}

async function login(email, password) {
  const res = await api('/api/auth/login', { method: 'POST', body: { email, password } });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body.access_token;
}

/** Markup in a name: the console must show it as text, never run it. */
const MARKUP = '<img src=x onerror="window.__ran=1">';

async function newUser(prefix) {
  const root = await login(EMAIL, PASSWORD);
  const name = `${prefix}${randomBytes(3).toString('hex')}`;
  const user = { username: name, email: `${name}@example.com`, password: 'Console-Test-Password-7' };
  const created = await api('/api/users/', { method: 'POST', token: root, body: { ...user, full_name: `Test ${prefix} ${MARKUP}` } });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  return { ...user, id: created.body.id };
}

/** A TOTP code from pyotp, `offset` seconds from now. */
function totp(secret, offset = 0) {
  return execFileSync(PYTHON, ['-c',
    'import pyotp, sys, time; print(pyotp.TOTP(sys.argv[1]).at(time.time() + int(sys.argv[2])))',
    secret, String(offset)]).toString().trim();
}

/** The text of the QR code in a PNG, read by zxing-cpp. */
function readQr(png) {
  return execFileSync(PYTHON, ['-c',
    'import io, sys, zxingcpp; from PIL import Image; '
    + 'print(zxingcpp.read_barcodes(Image.open(io.BytesIO(sys.stdin.buffer.read())))[0].text)'],
  { input: png }).toString().trim();
}

/**
 * A fresh browser context on the console, which records CSP violations
 * (the document's event and the console's messages) and script errors.
 */
async function open({ width = 1280, height = 900, authenticator = false, colorScheme = 'light' } = {}) {
  const context = await browser.newContext({ viewport: { width, height }, colorScheme });
  const escaped = await offline(context);
  await context.addInitScript(() => {
    // Layout shifts not caused by the user's input: content jumping as data loads.
    window.__shifts = [];
    new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) {
        if (!entry.hadRecentInput) {
          const node = entry.sources[0]?.node;
          window.__shifts.push({ value: entry.value, where: `${location.hash} ${node?.nodeName}.${node?.className ?? ''} ${(node?.textContent ?? '').slice(0, 40)}` });
        }
      }
    }).observe({ type: 'layout-shift', buffered: true });
    window.__violations = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__violations.push(`${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  const page = await context.newPage();
  const problems = [];
  page.on('console', (msg) => {
    if (/Content.Security.Policy|Refused to/i.test(msg.text())) problems.push(msg.text());
  });
  page.on('pageerror', (err) => problems.push(String(err)));
  let authenticatorId;
  if (authenticator) {
    const cdp = await context.newCDPSession(page);
    await cdp.send('WebAuthn.enable');
    ({ authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: {
        protocol: 'ctap2', transport: 'internal', hasResidentKey: true,
        hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true,
      },
    }));
  }
  await page.goto(`${ORIGIN}/admin/`);
  return { context, page, escaped, problems, authenticatorId };
}

/** Fails on any CSP violation, script error or request off the machine. */
async function clean({ page, escaped, problems, context }) {
  const shifts = await page.evaluate(() => window.__shifts ?? []);
  const shift = shifts.reduce((sum, s) => sum + s.value, 0);
  assert.ok(shift < 0.1, `the layout jumped while data loaded (shift score ${shift.toFixed(3)}): ${JSON.stringify(shifts)}`);
  const violations = await page.evaluate(() => window.__violations ?? []);
  assert.deepEqual(violations, [], 'CSP violations');
  assert.deepEqual(problems, [], 'CSP reports or script errors');
  assert.deepEqual(escaped, [], 'requests that left the machine');
  await context.close();
}

/** axe-core in the page: no serious or critical violation. */
async function accessible(page, what) {
  await page.evaluate(AXE);
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  assert.deepEqual(bad.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`), [], `axe on ${what}`);
}

async function shot(page, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, `console-${name}.png`), fullPage: true });
  if (SCREENSHOTS) {
    mkdirSync(SCREENSHOTS, { recursive: true });
    await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: false });
  }
}

async function signIn(page, login, password) {
  await page.getByLabel('Email or username').fill(login);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
}

const nav = (page) => page.getByRole('navigation');
const region = (page, name) => page.getByRole('region', { name, exact: true });

async function signedIn(page) {
  await nav(page).getByRole('button', { name: 'Sign out' }).waitFor();
}

test('a superuser finds a user, deactivates and restores them, meets the 412, resets a second factor', async () => {
  const target = await newUser('ada');
  const s = await open();
  const { page } = s;
  await accessible(page, 'sign-in');
  await shot(page, 'sign-in');
  await signIn(page, EMAIL, PASSWORD);
  await signedIn(page);
  for (const link of ['My account', 'Users', 'Audit', 'Webhooks']) {
    await nav(page).getByRole('link', { name: link }).waitFor();
  }

  await nav(page).getByRole('link', { name: 'Users' }).click();
  await page.getByRole('heading', { level: 1, name: 'Users' }).waitFor();
  for (const header of ['Username', 'Email', 'Name', 'Active', 'Superuser', 'Created']) {
    await page.getByRole('columnheader', { name: header, exact: true }).waitFor();
  }
  await page.getByRole('button', { name: 'New user' }).waitFor();
  await page.getByRole('searchbox', { name: 'Search users' }).fill(target.username);
  await page.getByText('1 user', { exact: true }).waitFor();
  // The name's markup is text in its cell, and nothing of it ran.
  await page.getByRole('cell', { name: `Test ada ${MARKUP}`, exact: true }).waitFor();
  assert.equal(await page.locator('main img').count(), 0);
  assert.equal(await page.evaluate(() => window.__ran), undefined);
  await accessible(page, 'users');
  await shot(page, 'users');
  await page.getByRole('link', { name: target.username, exact: true }).click();
  await page.getByRole('heading', { level: 1, name: target.username }).waitFor();
  for (const heading of ['Sessions', 'Sign-in methods', 'Access tokens', 'Events']) {
    await page.getByRole('heading', { level: 2, name: heading, exact: true }).waitFor();
  }
  await accessible(page, 'a user');
  await shot(page, 'user');

  // Deactivate, then restore: the API agrees each time.
  await page.getByRole('button', { name: 'Deactivate' }).click();
  await page.getByRole('button', { name: 'Restore' }).waitFor();
  const root = await login(EMAIL, PASSWORD);
  assert.equal((await api(`/api/users/${target.id}`, { token: root })).body.is_active, false);
  assert.equal((await api('/api/auth/login', { method: 'POST', body: { email: target.email, password: target.password } })).status, 401);
  await page.getByRole('button', { name: 'Restore' }).click();
  await page.getByRole('button', { name: 'Deactivate' }).waitFor();
  assert.equal((await api(`/api/users/${target.id}`, { token: root })).body.is_active, true);

  // Another tab changes the user; this page's save is refused with 412.
  const changed = await api(`/api/users/${target.id}`, { method: 'PATCH', token: root, body: { full_name: 'Changed Elsewhere' } });
  assert.equal(changed.status, 200);
  const account = region(page, 'Account');
  await account.getByLabel('Full name').fill('Changed Here');
  await account.getByRole('button', { name: 'Save' }).click();
  await account.getByRole('alert').filter({ hasText: 'changed meanwhile' }).waitFor();
  assert.equal((await api(`/api/users/${target.id}`, { token: root })).body.full_name, 'Changed Elsewhere');
  await account.getByRole('button', { name: 'Reload' }).click();
  await account.getByRole('button', { name: 'Reload' }).waitFor({ state: 'detached' });
  assert.equal(await account.getByLabel('Full name').inputValue(), 'Changed Elsewhere');
  await account.getByLabel('Full name').fill('Changed Here');
  await account.getByRole('button', { name: 'Save' }).click();
  await account.getByRole('status').filter({ hasText: 'Saved.' }).waitFor();
  assert.equal((await api(`/api/users/${target.id}`, { token: root })).body.full_name, 'Changed Here');

  // The user turns TOTP on (through the API); the superuser resets it.
  const token = await login(target.email, target.password);
  const enrol = await api('/api/auth/mfa/totp', { method: 'POST', token, body: { current_password: target.password } });
  assert.equal(enrol.status, 200);
  assert.equal((await api('/api/auth/mfa/totp/confirm', { method: 'POST', token, body: { code: totp(enrol.body.secret) } })).status, 200);
  await page.reload();
  await page.getByRole('heading', { level: 1, name: target.username }).waitFor();
  await region(page, 'Sign-in methods').getByText(/^On \(10 recovery codes left\)$/).waitFor();
  await page.getByRole('button', { name: 'Reset second factor' }).click();
  await region(page, 'Account').getByRole('status').filter({ hasText: 'second factor is off' }).waitFor();
  await region(page, 'Sign-in methods').getByText('Off', { exact: true }).waitFor();
  assert.equal((await api(`/api/users/${target.id}/sign-in-methods`, { token: root })).body.totp, false);
  // A second reset says why it cannot, in an alert.
  await page.getByRole('button', { name: 'Reset second factor' }).click();
  await region(page, 'Account').getByRole('alert').filter({ hasText: /.+/ }).waitFor();

  await page.getByRole('button', { name: 'End all sessions' }).click();
  await region(page, 'Account').getByRole('status').filter({ hasText: 'Every session' }).waitFor();

  // New user, audit and webhooks pages.
  await nav(page).getByRole('link', { name: 'Users' }).click();
  await page.getByRole('button', { name: 'New user' }).click();
  await page.getByRole('heading', { level: 1, name: 'New user' }).waitFor();
  await accessible(page, 'new user');
  const name = `new${randomBytes(3).toString('hex')}`;
  await page.getByLabel('Email').fill(`${name}@example.com`);
  await page.getByLabel('Username').fill(name);
  await page.getByLabel('Password', { exact: true }).fill('Brand-New-Password-5');
  await page.getByRole('button', { name: 'Create user' }).click();
  await page.getByRole('heading', { level: 1, name }).waitFor();

  await nav(page).getByRole('link', { name: 'Audit' }).click();
  await page.getByRole('heading', { level: 1, name: 'Audit' }).waitFor();
  await page.getByLabel('Type').fill('user.created');
  await page.getByRole('button', { name: 'Apply filters' }).click();
  await region(page, 'Events').getByRole('cell', { name: 'user.created' }).first().waitFor();
  await accessible(page, 'audit');
  await shot(page, 'audit');

  await nav(page).getByRole('link', { name: 'Webhooks' }).click();
  await page.getByRole('heading', { level: 1, name: 'Webhooks' }).waitFor();
  // A receiver that is not there: deliveries fail and can be retried.
  await page.getByLabel('URL').fill('http://127.0.0.1:9/hook');
  await page.getByLabel('Description').fill('Console test');
  await page.getByRole('button', { name: 'Create webhook' }).click();
  const secret = await page.getByLabel('Signing secret').inputValue();
  assert.match(secret, /^whsec_/);
  await page.getByRole('link', { name: 'http://127.0.0.1:9/hook' }).click();
  await page.getByRole('heading', { level: 2, name: 'Deliveries' }).waitFor();
  await page.getByRole('button', { name: 'Send test event' }).click();
  const retry = region(page, 'Deliveries').getByRole('button', { name: /^Retry delivery of webhook.test/ });
  for (let i = 0; i < 20 && (await retry.count()) === 0; i++) {
    await page.waitForTimeout(500);
    await page.getByLabel('Status').selectOption('');
  }
  await retry.first().click();
  await region(page, 'Deliveries').getByRole('status').filter({ hasText: 'Retry queued' }).waitFor();
  await accessible(page, 'a webhook');
  await shot(page, 'webhook');
  await nav(page).getByRole('link', { name: 'Webhooks' }).click();
  await page.getByRole('cell', { name: 'http://127.0.0.1:9/hook' }).waitFor();
  await accessible(page, 'webhooks');
  await shot(page, 'webhooks');

  // Edit, rotate the secret, delete.
  await page.getByRole('link', { name: 'http://127.0.0.1:9/hook' }).click();
  const settings = region(page, 'Settings');
  await settings.getByLabel('Description').fill('Renamed in the console');
  await settings.getByRole('button', { name: 'Save' }).click();
  await settings.getByRole('status').filter({ hasText: 'Saved.' }).waitFor();
  await settings.getByRole('button', { name: 'Rotate secret' }).click();
  const rotated = await settings.getByLabel('New signing secret').inputValue();
  assert.match(rotated, /^whsec_/);
  assert.notEqual(rotated, secret);
  const hooks = (await api('/api/webhooks', { token: await login(EMAIL, PASSWORD) })).body;
  const mine = hooks.find((w) => w.url === 'http://127.0.0.1:9/hook');
  assert.equal(mine.description, 'Renamed in the console');
  await settings.getByRole('button', { name: 'Delete webhook' }).click();
  await page.getByRole('heading', { level: 1, name: 'Webhooks' }).waitFor();
  assert.equal((await api(`/api/webhooks/${mine.id}`, { token: await login(EMAIL, PASSWORD) })).status, 404);

  await clean(s);
});

test('a user sets up TOTP from the secret, adds a passkey, signs in with it and with a code, makes and revokes a token', async () => {
  const user = await newUser('grace');
  const s = await open({ authenticator: true });
  const { page } = s;
  await signIn(page, user.username, user.password);
  await signedIn(page);
  for (const link of ['Users', 'Audit', 'Webhooks']) {
    assert.equal(await nav(page).getByRole('link', { name: link }).count(), 0, `${link} shown to a user`);
  }
  await page.getByRole('heading', { level: 1, name: 'My account' }).waitFor();
  for (const heading of ['Profile', 'Password', 'Two-factor authentication', 'Passkeys', 'Sessions', 'Linked accounts', 'Access tokens', 'Events']) {
    await page.getByRole('heading', { level: 2, name: heading, exact: true }).waitFor();
  }
  await accessible(page, 'my account');
  await shot(page, 'account');

  // TOTP: the QR code's secret as text, a code from pyotp.
  const mfa = region(page, 'Two-factor authentication');
  await mfa.getByLabel('Current password').fill(user.password);
  await mfa.getByRole('button', { name: 'Set up authenticator app' }).click();
  const qr = mfa.getByRole('img', { name: /QR code/ });
  await qr.waitFor();
  const secret = await mfa.getByLabel('Secret').inputValue();
  assert.match(secret, /^[A-Z2-7]{16,}$/);
  // The QR code, read by an independent reader, is the otpauth URI.
  const uri = new URL(readQr(await qr.screenshot()));
  assert.equal(uri.protocol, 'otpauth:');
  assert.equal(uri.searchParams.get('secret'), secret);
  assert.equal(uri.host, 'totp');
  assert.equal(decodeURIComponent(uri.pathname), `/UserHub:${user.email}`);
  await accessible(page, 'the QR step');
  await shot(page, 'totp');
  await mfa.getByLabel('Code', { exact: true }).fill(totp(secret));
  await mfa.getByRole('button', { name: 'Verify' }).click();
  await mfa.getByRole('list', { name: 'Recovery codes' }).waitFor();
  assert.equal(await mfa.getByRole('list', { name: 'Recovery codes' }).getByRole('listitem').count(), 10);

  // A passkey from Chromium's virtual authenticator.
  const passkeys = region(page, 'Passkeys');
  await passkeys.getByLabel('Current password').fill(user.password);
  await passkeys.getByLabel('Passkey name').fill('Test key');
  await passkeys.getByRole('button', { name: 'Add a passkey' }).click();
  await passkeys.getByRole('cell', { name: 'Test key', exact: true }).waitFor();

  // An access token: shown once, works, then revoked.
  const tokens = region(page, 'Access tokens');
  await tokens.getByLabel('Token name').fill('ci');
  await tokens.getByLabel(/profile:read/).check();
  await tokens.getByLabel('Current password').fill(user.password);
  await tokens.getByRole('button', { name: 'Create token' }).click();
  const pat = await tokens.getByLabel('Token ci', { exact: true }).inputValue();
  assert.match(pat, /^uhp_/);
  assert.equal((await api('/api/auth/me', { token: pat })).status, 200);
  await tokens.getByRole('button', { name: 'Revoke token ci' }).click();
  await tokens.getByRole('status').filter({ hasText: 'revoked' }).waitFor();
  assert.equal((await api('/api/auth/me', { token: pat })).status, 401);

  // Out, and back in with the passkey (no code asked: it is two factors).
  await nav(page).getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
  await signedIn(page);
  await page.getByRole('heading', { level: 1, name: 'My account' }).waitFor();

  // The password, then the passkey for the second step.
  await nav(page).getByRole('button', { name: 'Sign out' }).click();
  await signIn(page, user.username, user.password);
  await page.getByRole('button', { name: 'Use a passkey instead' }).click();
  await signedIn(page);

  // Out, and back in with the password and a code (the next step's, since
  // the current one was spent turning TOTP on).
  await nav(page).getByRole('button', { name: 'Sign out' }).click();
  await signIn(page, user.email, user.password);
  await page.getByLabel('Code', { exact: true }).fill(totp(secret, 30));
  await accessible(page, 'the code step');
  await page.getByRole('button', { name: 'Verify' }).click();
  await signedIn(page);

  // A reload keeps the tab's session (the refresh token in sessionStorage).
  await page.reload();
  await signedIn(page);
  const stored = await page.evaluate(() => Object.keys(window.localStorage).length);
  assert.equal(stored, 0, 'nothing in localStorage');
  assert.deepEqual(await s.context.cookies(ORIGIN), [], 'no cookie a script could read');

  // Ended from elsewhere: the next call's 401 takes the page to sign-in.
  const other = await api('/api/auth/login', { method: 'POST', body: { email: user.email, password: user.password } });
  assert.equal(other.status, 403);
  await api('/api/users/' + user.id + '/sessions', { method: 'DELETE', token: await login(EMAIL, PASSWORD) });
  await region(page, 'Profile').getByLabel('Full name').fill('Grace Again');
  await region(page, 'Profile').getByRole('button', { name: 'Save' }).click();
  await page.getByRole('alert').filter({ hasText: 'signed out' }).waitFor();
  await page.getByLabel('Email or username').waitFor();

  await clean(s);
});

test('My account: email change with the password, one session ended, recovery codes, TOTP off, a passkey removed', async () => {
  const user = await newUser('mia');
  const s = await open({ authenticator: true });
  const { page } = s;
  const other = await login(user.email, user.password);
  await signIn(page, user.username, user.password);
  await signedIn(page);

  // Changed from another session meanwhile: 412, then "Reload".
  const profile = region(page, 'Profile');
  const elsewhere = await api(`/api/users/${user.id}`, { method: 'PATCH', token: other, body: { full_name: 'From Elsewhere' } });
  assert.equal(elsewhere.status, 200);
  await profile.getByLabel('Full name').fill('From Here');
  await profile.getByRole('button', { name: 'Save' }).click();
  await profile.getByRole('alert').filter({ hasText: 'changed meanwhile' }).waitFor();
  await profile.getByRole('button', { name: 'Reload' }).click();
  await profile.getByRole('button', { name: 'Reload' }).waitFor({ state: 'detached' });
  assert.equal(await profile.getByLabel('Full name').inputValue(), 'From Elsewhere');

  // The email: the "Current password" box appears for it and is sent.
  assert.equal(await profile.getByLabel('Current password').isVisible(), false);
  const email = `moved-${user.username}@example.com`;
  await profile.getByLabel('Email').fill(email);
  await profile.getByLabel('Current password').fill(user.password);
  await profile.getByRole('button', { name: 'Save' }).click();
  await profile.getByRole('status').filter({ hasText: 'verification link' }).waitFor();
  assert.equal((await api('/api/auth/me', { token: await login(email, user.password) })).body.email, email);

  // The other session (the API login above) ends from the list.
  const sessions = region(page, 'Sessions');
  await sessions.getByRole('button', { name: /^End session started/ }).first().click();
  await sessions.getByRole('status').filter({ hasText: 'Session ended.' }).waitFor();
  assert.equal((await api('/api/auth/me', { token: other })).status, 401);

  // TOTP on, new recovery codes with a recovery code, then off with a code.
  const mfa = region(page, 'Two-factor authentication');
  await mfa.getByLabel('Current password').fill(user.password);
  await mfa.getByRole('button', { name: 'Set up authenticator app' }).click();
  const secret = await mfa.getByLabel('Secret').inputValue();
  await mfa.getByLabel('Code', { exact: true }).fill(totp(secret));
  await mfa.getByRole('button', { name: 'Verify' }).click();
  await mfa.getByRole('list', { name: 'Recovery codes' }).waitFor();
  const first = await mfa.getByRole('list', { name: 'Recovery codes' }).getByRole('listitem').allInnerTexts();
  await mfa.getByRole('button', { name: 'Done' }).click();
  await mfa.getByText('Recovery codes left: 10.', { exact: false }).waitFor();
  await mfa.getByLabel('Current password').fill(user.password);
  await mfa.getByLabel('Code', { exact: true }).fill(first[0]);
  await mfa.getByRole('button', { name: 'New recovery codes' }).click();
  await mfa.getByRole('list', { name: 'Recovery codes' }).waitFor();
  const second = await mfa.getByRole('list', { name: 'Recovery codes' }).getByRole('listitem').allInnerTexts();
  assert.equal(second.length, 10);
  assert.ok(!second.includes(first[1]), 'the old set is spent');
  await mfa.getByLabel('Current password').fill(user.password);
  await mfa.getByLabel('Code', { exact: true }).fill(totp(secret, 30));
  await mfa.getByRole('button', { name: 'Turn off' }).click();
  await mfa.getByText('Two-factor authentication is off.', { exact: true }).first().waitFor();
  assert.equal((await api('/api/auth/mfa', { token: await login(email, user.password) })).body.totp, false);

  // A passkey added, then removed.
  const passkeys = region(page, 'Passkeys');
  await passkeys.getByLabel('Current password').fill(user.password);
  await passkeys.getByRole('button', { name: 'Add a passkey' }).click();
  await passkeys.getByRole('button', { name: 'Remove passkey Passkey 1' }).click();
  await passkeys.getByText('No passkeys').waitFor();
  assert.deepEqual((await api('/api/auth/passkeys', { token: await login(email, user.password) })).body, []);
  await clean(s);
});

test('the main flow works with the keyboard alone, and the layout holds at 360 px in dark mode', async () => {
  const target = await newUser('kay');
  const s = await open({ width: 360, height: 740, colorScheme: 'dark' });
  const { page } = s;
  /** Presses Tab until the focused element matches `accept`, at most 60 times. */
  const seen = [];
  async function tabTo(describe) {
    seen.length = 0;
    for (let i = 0; i < 60; i++) {
      if (i > 0) await page.keyboard.press('Tab');
      const focused = await page.evaluate(() => {
        const el = document.activeElement;
        const label = el?.labels?.[0]?.textContent ?? '';
        return `${el?.tagName} ${label} ${el?.textContent ?? ''}`.replace(/\s+/g, ' ').trim();
      });
      if (describe(focused)) return;
      seen.push(focused);
    }
    assert.fail(`focus never reached the element; it went through ${JSON.stringify(seen)}`);
  }
  await tabTo((f) => f.startsWith('INPUT Email or username'));
  await page.keyboard.type(EMAIL);
  await tabTo((f) => f.startsWith('INPUT Password'));
  await page.keyboard.type(PASSWORD);
  await page.keyboard.press('Enter');
  await signedIn(page);
  await tabTo((f) => f === 'A Users');
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { level: 1, name: 'Users' }).waitFor();
  await tabTo((f) => f.startsWith('INPUT Search users'));
  await page.keyboard.type(target.username);
  await page.getByText('1 user', { exact: true }).waitFor();
  await tabTo((f) => f === `A ${target.username}`);
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { level: 1, name: target.username }).waitFor();
  await tabTo((f) => f === 'BUTTON Deactivate');
  await page.keyboard.press('Enter');
  await page.getByRole('button', { name: 'Restore' }).waitFor();
  const root = await login(EMAIL, PASSWORD);
  assert.equal((await api(`/api/users/${target.id}`, { token: root })).body.is_active, false);

  // Nothing wider than the screen, on every page.
  for (const link of ['My account', 'Users', 'Audit', 'Webhooks']) {
    await nav(page).getByRole('link', { name: link }).click();
    await page.getByRole('heading', { level: 1 }).waitFor();
    await page.waitForLoadState('networkidle');
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= 360, `${link} is ${width} px wide at 360 px`);
    await accessible(page, `${link}, dark, 360 px`);
  }
  await nav(page).getByRole('link', { name: 'My account' }).click();
  await page.getByRole('heading', { level: 2, name: 'Events' }).waitFor();
  await shot(page, 'account-360-dark');
  await clean(s);
});

test('the console refreshes its session before the access token expires', async () => {
  const user = await newUser('rex');
  const context = await browser.newContext();
  await offline(context);
  const page = await context.newPage();
  await page.clock.install();
  await page.goto(`${ORIGIN}/admin/`);
  await signIn(page, user.username, user.password);
  await signedIn(page);
  const refreshed = page.waitForResponse((r) => r.url().endsWith('/api/auth/refresh'));
  // The access token lives 30 minutes; the console renews it a minute before.
  await page.clock.runFor('29:30');
  assert.equal((await refreshed).status(), 200);
  // The old refresh token is spent: the console holds the new one.
  await page.reload();
  await signedIn(page);
  await context.close();
});

/** At the provider: its login as `account`, then its consent page (posted as forms). */
async function atProvider(page, account) {
  await page.waitForURL((url) => !url.href.startsWith(ORIGIN));
  for (let step = 0; step < 4 && !page.url().startsWith(ORIGIN); step++) {
    const prompt = JSON.parse(await page.evaluate(() => document.body.innerText)).prompt;
    const here = new URL(page.url()).pathname;
    const action = prompt === 'login' ? `${here}/login` : `${here}/confirm`;
    await Promise.all([
      page.waitForNavigation(),
      page.evaluate(([target, login]) => {
        const form = document.createElement('form');
        form.method = 'POST';
        form.action = target;
        const input = document.createElement('input');
        input.name = 'login';
        input.value = login;
        form.append(input);
        document.body.append(form);
        form.submit();
      }, [action, account]),
    ]);
  }
}

test('a provider sign-in from the console', { skip: !PROVIDER && 'no OpenID provider configured' }, async () => {
  const s = await open();
  const { page } = s;
  await page.getByRole('button', { name: `Sign in with ${PROVIDER}` }).click();
  const account = `console${randomBytes(3).toString('hex')}`;
  await atProvider(page, account);
  await signedIn(page);
  await page.getByText(account, { exact: true }).first().waitFor();
  assert.equal(new URL(page.url()).pathname, '/admin/');
  await region(page, 'Linked accounts').getByRole('cell', { name: PROVIDER, exact: true }).waitFor();
  await clean(s);
});

test('linking a provider account from My account', { skip: !PROVIDER && 'no OpenID provider configured' }, async () => {
  const user = await newUser('lin');
  const s = await open();
  const { page } = s;
  await signIn(page, user.username, user.password);
  await signedIn(page);
  const linked = region(page, 'Linked accounts');
  await linked.getByLabel('Current password').fill(user.password);
  await linked.getByRole('button', { name: `Link ${PROVIDER}` }).click();
  await atProvider(page, `linked${randomBytes(3).toString('hex')}`);
  // Back in the same tab: the session resumes and the link is made.
  await page.getByRole('status').filter({ hasText: 'The account is linked.' }).waitFor();
  await region(page, 'Linked accounts').getByRole('cell', { name: PROVIDER, exact: true }).waitFor();
  const token = await login(user.email, user.password);
  const identities = await api('/api/auth/identities', { token });
  assert.equal(identities.body.length, 1);
  assert.equal(identities.body[0].provider, PROVIDER);
  await clean(s);
});
