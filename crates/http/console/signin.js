// Signing in: a password (then a code or a passkey when the account has a
// second factor), a passkey alone, or a configured provider.
import { h, replace, field } from './dom.js';
import { ApiError, call, post, get, signIn, messageOf } from './api.js';
import { passkeysSupported, usePasskey } from './webauthn.js';
import { act, form } from './widgets.js';

/** The sign-in page; `providers` are the configured providers' names. */
export function signInPage(root, providers, notice) {
  const alert = h('div', { role: 'alert', class: 'alert' }, notice ?? '');
  const place = placeFor(alert);
  const login = field('Email or username', { name: 'username', autocomplete: 'username', required: true, autocapitalize: 'none', spellcheck: 'false' });
  const password = field('Password', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Sign in');
  const passwordForm = form({
    onsubmit: () => act(place, submit, async () => {
      const answer = await attempt(() => call('POST', '/api/auth/login', {
        form: { username: login.input.value.trim(), password: password.input.value },
        auth: false,
      }));
      if (answer) await finishOrSecondStep(root, answer);
    }),
  }, login.wrapper, password.wrapper, submit);

  const others = [];
  if (passkeysSupported()) {
    const passkey = h('button', { type: 'button' }, 'Sign in with a passkey');
    passkey.addEventListener('click', () => act(place, passkey, async () => {
      const { body } = await post('/api/auth/passkeys/login/options', undefined, { auth: false });
      const credential = await usePasskey(body.publicKey);
      const tokens = await post('/api/auth/passkeys/login', { login_token: body.login_token, credential }, { auth: false });
      await signIn(tokens.body);
    }));
    others.push(passkey);
  }
  for (const provider of providers) {
    const button = h('button', { type: 'button' }, `Sign in with ${provider}`);
    button.addEventListener('click', () => act(place, button, async () => {
      const { body } = await get(`/api/auth/oauth/${encodeURIComponent(provider)}/authorize`, { auth: false });
      window.location.assign(body.authorization_url);
    }));
    others.push(button);
  }
  replace(root, h('main', { id: 'main' }, h('div', { class: 'signin card' },
    h('h1', { tabindex: '-1' }, 'Sign in to UserHub'),
    alert,
    passwordForm,
    others.length ? h('div', { class: 'others' }, h('p', { class: 'or' }, 'or'), others) : null)));
  login.input.focus();
}

/** A login answer: 200 signs in; the 403 `mfa_required` asks for the second step. */
async function attempt(request) {
  try {
    return { tokens: (await request()).body };
  } catch (err) {
    if (err instanceof ApiError && err.status === 403 && err.body.error === 'mfa_required') {
      return { mfa: err.body };
    }
    throw err;
  }
}

async function finishOrSecondStep(root, answer) {
  if (answer.tokens) {
    await signIn(answer.tokens);
  } else {
    secondStep(root, answer.mfa);
  }
}

/** Shows the code step (and the passkey alternative) of a sign-in. */
export function secondStep(root, mfa) {
  const alert = h('div', { role: 'alert', class: 'alert' });
  const place = placeFor(alert);
  const code = field('Code', { inputmode: 'numeric', autocomplete: 'one-time-code', required: true, spellcheck: 'false' },
    'The 6 digits your authenticator app shows, or one of your recovery codes.');
  const verify = h('button', { type: 'submit', class: 'primary' }, 'Verify');
  const codeForm = form({
    onsubmit: () => act(place, verify, async () => {
      const tokens = await post('/api/auth/login/mfa', { mfa_token: mfa.mfa_token, code: code.input.value.trim() }, { auth: false });
      await signIn(tokens.body);
    }),
  }, code.wrapper, verify);
  let passkey = null;
  if (mfa.passkey && passkeysSupported()) {
    passkey = h('button', { type: 'button' }, 'Use a passkey instead');
    passkey.addEventListener('click', () => act(place, passkey, async () => {
      const credential = await usePasskey(mfa.passkey);
      const tokens = await post('/api/auth/login/mfa', { mfa_token: mfa.mfa_token, credential }, { auth: false });
      await signIn(tokens.body);
    }));
  }
  replace(root, h('main', { id: 'main' }, h('div', { class: 'signin card' },
    h('h1', { tabindex: '-1' }, 'Two-factor authentication'),
    alert, codeForm, passkey ? h('div', { class: 'others' }, passkey) : null,
    h('p', {}, h('button', { type: 'button', class: 'link', onclick: () => window.location.reload() }, 'Start again')))));
  code.input.focus();
}

/**
 * Finishes a provider sign-in on the callback URL the provider sent the
 * browser to: the same URL, asked for JSON, signs in or asks for the code.
 */
export async function finishProviderSignIn(root) {
  const url = window.location.pathname + window.location.search;
  window.history.replaceState(null, '', '/admin/#/account');
  const alert = h('div', { role: 'alert', class: 'alert' });
  replace(root, h('main', { id: 'main' }, h('div', { class: 'signin card' }, h('h1', { tabindex: '-1' }, 'Signing in…'), alert)));
  try {
    const answer = await attempt(() => call('GET', url, { auth: false }));
    await finishOrSecondStep(root, answer);
    return true;
  } catch (err) {
    return messageOf(err);
  }
}

function placeFor(alert) {
  return {
    fail(err) {
      replace(alert, err ? messageOf(err) : '');
    },
  };
}
