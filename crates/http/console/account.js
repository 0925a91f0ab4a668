// My account: what every signed-in user can see and change of their own.
import { h, field, replace } from './dom.js';
import * as api from './api.js';
import { act, changedMeanwhile, cursorList, eventsTable, form, section, sessionsTable } from './widgets.js';
import { accessTokens, linkedAccounts, passkeys, twoFactor } from './security.js';

/** The page; `providers` are the configured providers' names. */
export function accountPage(root, providers) {
  const me = api.currentUser();
  replace(root,
    h('h1', { tabindex: '-1' }, 'My account'),
    profile(me).el,
    password().el,
    twoFactor().el,
    passkeys().el,
    sessions().el,
    linkedAccounts(providers).el,
    accessTokens().el,
    events().el);
}

function profile(me) {
  const place = section('Profile');
  const email = field('Email', { type: 'email', autocomplete: 'email', value: me.email, required: true });
  const username = field('Username', { autocomplete: 'username', value: me.username, required: true, spellcheck: 'false' });
  const fullName = field('Full name', { autocomplete: 'name', value: me.full_name ?? '' });
  // Changing the address needs the password: asked for only then.
  const current = field('Current password', { type: 'password', autocomplete: 'current-password' },
    'Needed to change your email.');
  current.wrapper.hidden = true;
  email.input.addEventListener('input', () => {
    current.wrapper.hidden = email.input.value.trim().toLowerCase() === api.currentUser().email;
  });
  const save = h('button', { type: 'submit', class: 'primary' }, 'Save');
  let etag = null;
  const load = async () => {
    const answer = await api.get('/api/auth/me');
    etag = answer.etag;
    return answer.body;
  };
  load().catch((err) => place.fail(err));
  place.fill(form({
    onsubmit: () => act(place, save, async () => {
      const user = api.currentUser();
      const changes = {};
      const emailValue = email.input.value.trim();
      if (emailValue.toLowerCase() !== user.email) {
        changes.email = emailValue;
        if (current.input.value) changes.current_password = current.input.value;
      }
      if (username.input.value.trim() !== user.username) changes.username = username.input.value.trim();
      const name = fullName.input.value.trim();
      if (name !== (user.full_name ?? '')) changes.full_name = name || null;
      if (Object.keys(changes).length === 0) {
        place.ok('Nothing to save.');
        return;
      }
      try {
        await api.patch(`/api/users/${user.id}`, changes, { ifMatch: etag });
      } catch (err) {
        if (err.status !== 412) throw err;
        changedMeanwhile(place, async () => {
          Object.assign(user, await load());
          email.input.value = user.email;
          username.input.value = user.username;
          fullName.input.value = user.full_name ?? '';
          current.wrapper.hidden = true;
          place.body.querySelector('.conflict')?.remove();
          place.fail(null);
        });
        return;
      }
      current.input.value = '';
      current.wrapper.hidden = true;
      const fresh = await load();
      Object.assign(user, fresh);
      place.ok(changes.email ? 'Saved. A verification link was sent to the new address.' : 'Saved.');
    }),
  }, email.wrapper, current.wrapper, username.wrapper, fullName.wrapper,
  h('p', {}, me.is_verified ? 'Your email is verified.' : 'Your email is not verified yet.'), save));
  return place;
}

function password() {
  const place = section('Password');
  const current = field('Current password', { type: 'password', autocomplete: 'current-password', required: true });
  const next = field('New password', { type: 'password', autocomplete: 'new-password', required: true },
    '8 to 72 bytes; not your username or email, and not easy to guess.');
  const save = h('button', { type: 'submit' }, 'Change password');
  place.fill(form({
    onsubmit: () => act(place, save, async () => {
      await api.post('/api/auth/change-password', { current_password: current.input.value, new_password: next.input.value });
      current.input.value = '';
      next.input.value = '';
      place.ok('Password changed. Your other sessions were ended.');
    }),
  }, current.wrapper, next.wrapper, save));
  return place;
}

function sessions() {
  const place = section('Sessions');
  const holder = h('div');
  const everywhere = h('button', { type: 'button' }, 'Sign out everywhere');
  everywhere.addEventListener('click', () => act(place, everywhere, async () => {
    await api.post('/api/auth/logout-all');
    api.signedOut();
  }));
  const load = () => act(place, null, async () => {
    const { body } = await api.get('/api/auth/sessions');
    replace(holder, sessionsTable(body, (s, button) => act(place, button, async () => {
      await api.del(`/api/auth/sessions/${s.id}`);
      place.ok('Session ended.');
      await load();
    })));
    place.body.setAttribute('aria-busy', 'false');
  });
  place.fill(holder, everywhere);
  load();
  return place;
}

function events() {
  const place = section('Events');
  cursorList(place, async (cursor) => {
    const query = new URLSearchParams({ limit: '10' });
    if (cursor) query.set('cursor', cursor);
    return (await api.get(`/api/auth/events?${query}`)).body;
  }, (items) => eventsTable(items));
  return place;
}
