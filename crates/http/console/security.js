// The ways into one's own account: second factor, passkeys, linked
// provider accounts and access tokens. Each new way in asks for the
// current password first, as the API does.
import { encode } from './vendor/uqr.mjs';
import { h, field, replace, uid } from './dom.js';
import * as api from './api.js';
import { passkeysSupported, createPasskey } from './webauthn.js';
import { act, form, identitiesTable, passkeysTable, section, shownOnce, tokensTable } from './widgets.js';

/** The fields of a personal access token's scopes. */
const SCOPES = [
  ['profile:read', 'Read my profile'],
  ['users:read', 'Read users'],
  ['users:write', 'Change users'],
  ['audit:read', 'Read events'],
];

function currentPassword(hint) {
  return field('Current password', { type: 'password', autocomplete: 'current-password' }, hint);
}

/** Sends `current_password` only when typed (an account without one sends none). */
function withPassword(input, body = {}) {
  return input.value ? { ...body, current_password: input.value } : body;
}

/** A QR code drawn as SVG squares in the page (never sent anywhere). */
function qrCode(text) {
  const { size, data } = encode(text, { ecc: 'M', border: 2 });
  const squares = [];
  data.forEach((row, y) => row.forEach((dark, x) => {
    if (dark) squares.push(`M${x} ${y}h1v1h-1z`);
  }));
  return h('svg', { viewBox: `0 0 ${size} ${size}`, class: 'qr', role: 'img', 'aria-label': 'QR code for your authenticator app' },
    h('rect', { width: size, height: size, class: 'qr-light' }),
    h('path', { d: squares.join(''), class: 'qr-dark' }));
}

/** Turning TOTP on and off, and the recovery codes. */
export function twoFactor() {
  const place = section('Two-factor authentication');
  const load = () => act(place, null, async () => {
    const { body } = await api.get('/api/auth/mfa');
    place.fill(body.totp ? turnedOn(place, body, load) : turnedOff(place, load));
  });
  load();
  return place;
}

function turnedOff(place, reload) {
  const current = currentPassword();
  const start = h('button', { type: 'submit' }, 'Set up authenticator app');
  const next = h('div');
  const starting = form({
    onsubmit: () => act(place, start, async () => {
      const { body } = await api.post('/api/auth/mfa/totp', withPassword(current.input));
      current.input.value = '';
      starting.hidden = true;
      replace(next, confirmStep(place, body, reload));
      next.querySelector('input[inputmode="numeric"]')?.focus();
    }),
  }, current.wrapper, start);
  return h('div', {}, h('p', {}, 'Two-factor authentication is off.'), starting, next);
}

function confirmStep(place, enrolment, reload) {
  const secretId = uid();
  const code = field('Code', { inputmode: 'numeric', autocomplete: 'one-time-code', spellcheck: 'false' },
    'The 6 digits the app shows now.');
  const verify = h('button', { type: 'submit', class: 'primary' }, 'Verify');
  const codes = h('div');
  return h('div', { class: 'enrol' },
    h('p', {}, 'Scan this code with your authenticator app, or type the secret below into it.'),
    qrCode(enrolment.otpauth_uri),
    h('label', { for: secretId }, 'Secret'),
    h('input', { id: secretId, readonly: true, value: enrolment.secret, class: 'mono', spellcheck: 'false' }),
    form({
      onsubmit: () => act(place, verify, async () => {
        const { body } = await api.post('/api/auth/mfa/totp/confirm', { code: code.input.value.trim() });
        replace(codes, recoveryCodes(body.recovery_codes), h('button', { type: 'button', onclick: reload }, 'Done'));
        place.ok('Two-factor authentication is on.');
      }),
    }, code.wrapper, verify),
    codes);
}

function recoveryCodes(list) {
  return h('div', { class: 'secret' },
    h('p', {}, 'Recovery codes: each works once where a code is asked for. Keep them somewhere safe; they are not shown again.'),
    h('ul', { class: 'codes mono', 'aria-label': 'Recovery codes' }, list.map((c) => h('li', {}, c))));
}

function turnedOn(place, state, reload) {
  const current = currentPassword();
  const code = field('Code', { inputmode: 'numeric', autocomplete: 'one-time-code', spellcheck: 'false' },
    'A code from your app, or a recovery code.');
  const off = h('button', { type: 'button' }, 'Turn off');
  const renew = h('button', { type: 'button' }, 'New recovery codes');
  const codes = h('div');
  const body = () => ({ current_password: current.input.value, code: code.input.value.trim() });
  off.addEventListener('click', () => act(place, off, async () => {
    await api.post('/api/auth/mfa/totp/disable', body());
    place.ok('Two-factor authentication is off.');
    await reload();
  }));
  renew.addEventListener('click', () => act(place, renew, async () => {
    const answer = await api.post('/api/auth/mfa/recovery-codes', body());
    current.input.value = '';
    code.input.value = '';
    replace(codes, recoveryCodes(answer.body.recovery_codes));
  }));
  return h('div', {},
    h('p', {}, `Two-factor authentication is on. Recovery codes left: ${state.recovery_codes_left}.`),
    current.wrapper, code.wrapper, h('div', { class: 'actions' }, off, renew), codes);
}

/** One's passkeys: add, rename, remove. */
export function passkeys() {
  const place = section('Passkeys');
  const list = h('div');
  const load = () => act(place, null, async () => {
    const { body } = await api.get('/api/auth/passkeys');
    replace(list, passkeysTable(body, (p, button) => act(place, button, async () => {
      await api.del(`/api/auth/passkeys/${p.id}`);
      place.ok(`Passkey ${p.name} removed.`);
      await load();
    })));
    place.body.setAttribute('aria-busy', 'false');
  });
  const current = currentPassword();
  const name = field('Passkey name', { maxlength: '64', placeholder: 'e.g. Work laptop' });
  const add = h('button', { type: 'submit' }, 'Add a passkey');
  const adding = form({
    onsubmit: () => act(place, add, async () => {
      const options = await api.post('/api/auth/passkeys/register/options', withPassword(current.input));
      current.input.value = '';
      const credential = await createPasskey(options.body.publicKey);
      const body = { registration_token: options.body.registration_token, credential };
      if (name.input.value.trim()) body.name = name.input.value.trim();
      const created = await api.post('/api/auth/passkeys/register', body);
      name.input.value = '';
      place.ok(`Passkey ${created.body.name} added.`);
      await load();
    }),
  }, current.wrapper, name.wrapper, add);
  place.fill(list, passkeysSupported() ? adding : h('p', { class: 'muted' }, 'This browser cannot make passkeys.'));
  load();
  return place;
}

/** Provider accounts linked to one's own, and linking another. */
export function linkedAccounts(providers) {
  const place = section('Linked accounts');
  const list = h('div');
  const load = () => act(place, null, async () => {
    const { body } = await api.get('/api/auth/identities');
    replace(list, identitiesTable(body, (i, button) => act(place, button, async () => {
      await api.del(`/api/auth/identities/${encodeURIComponent(i.provider)}`);
      place.ok(`${i.provider} unlinked.`);
      await load();
    })));
    place.body.setAttribute('aria-busy', 'false');
  });
  const parts = [list];
  if (providers.length) {
    const current = currentPassword('Needed unless you signed in within the last few minutes.');
    const buttons = providers.map((provider) => {
      const button = h('button', { type: 'button' }, `Link ${provider}`);
      button.addEventListener('click', () => act(place, button, async () => {
        const path = `/api/auth/oauth/${encodeURIComponent(provider)}/associate/authorize`;
        const { body } = current.input.value
          ? await api.post(path, { current_password: current.input.value })
          : await api.get(path);
        window.location.assign(body.authorization_url);
      }));
      return button;
    });
    parts.push(current.wrapper, h('div', { class: 'actions' }, buttons));
  }
  place.fill(...parts);
  load();
  return place;
}

/** One's personal access tokens: create (shown once) and revoke. */
export function accessTokens() {
  const place = section('Access tokens');
  const list = h('div');
  const shown = h('div');
  const load = () => act(place, null, async () => {
    const { body } = await api.get('/api/auth/tokens');
    replace(list, tokensTable(body, (t, button) => act(place, button, async () => {
      await api.del(`/api/auth/tokens/${t.id}`);
      place.ok(`Token ${t.name} revoked.`);
      await load();
    })));
    place.body.setAttribute('aria-busy', 'false');
  });
  const name = field('Token name', { maxlength: '100', required: true });
  const scopes = SCOPES.map(([scope, text]) => ({ scope, ...field(`${text} (${scope})`, { type: 'checkbox' }) }));
  const days = field('Expires in days', { type: 'number', min: '1', value: '30' });
  const current = currentPassword();
  const create = h('button', { type: 'submit' }, 'Create token');
  const creating = form({
    onsubmit: () => act(place, create, async () => {
      const body = withPassword(current.input, {
        name: name.input.value.trim(),
        scopes: scopes.filter((s) => s.input.checked).map((s) => s.scope),
        expires_in_days: Number(days.input.value),
      });
      const created = await api.post('/api/auth/tokens', body);
      current.input.value = '';
      name.input.value = '';
      replace(shown, shownOnce(`Token ${created.body.name}`, created.body.token));
      await load();
    }),
  }, name.wrapper,
  h('fieldset', {}, h('legend', {}, 'Scopes'), scopes.map((s) => s.wrapper)),
  days.wrapper, current.wrapper, create);
  place.fill(list, shown, creating);
  load();
  return place;
}
