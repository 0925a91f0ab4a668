// Superusers: one user's page. Saves send the ETag read with the user, so
// a change made meanwhile (another tab, another superuser) is not
// overwritten: the API answers 412 and the page offers to reload.
import { h, field, replace } from './dom.js';
import * as api from './api.js';
import {
  act, changedMeanwhile, cursorList, eventsTable, form, identitiesTable, passkeysTable, section, sessionsTable,
  tokensTable,
} from './widgets.js';

/** The page of the user with `id`. */
export async function userPage(root, id) {
  const heading = h('h1', { tabindex: '-1' }, '\u00a0');
  const account = section('Account');
  const sessions = section('Sessions');
  const methods = section('Sign-in methods');
  const tokens = section('Access tokens');
  const events = section('Events');
  // The other sections come once the account is in: nothing below it
  // moves when its form arrives.
  replace(root, heading, account.el);
  const base = `/api/users/${encodeURIComponent(id)}`;

  const answer = await act(account, null, () => api.get(base));
  if (!answer) return;
  let user = answer.body;
  let etag = answer.etag;
  replace(heading, user.username);
  heading.focus();

  const reload = async () => {
    const fresh = await api.get(base);
    user = fresh.body;
    etag = fresh.etag;
    replace(heading, user.username);
    account.fill(editor());
    account.fail(null);
  };

  /** A write that needs the user as read: 412 offers a reload. */
  const guarded = (button, request, done) => act(account, button, async () => {
    try {
      await request();
    } catch (err) {
      if (err.status === 412) {
        changedMeanwhile(account, reload);
        return;
      }
      throw err;
    }
    await reload();
    account.ok(done);
  });

  function editor() {
    const email = field('Email', { type: 'email', autocomplete: 'off', value: user.email ?? '' });
    const username = field('Username', { autocomplete: 'off', value: user.username, spellcheck: 'false' });
    const fullName = field('Full name', { autocomplete: 'off', value: user.full_name ?? '' });
    const superuser = field('Superuser', { type: 'checkbox', checked: user.is_superuser });
    const password = field('New password', { type: 'password', autocomplete: 'new-password' },
      'Leave empty to keep the password; the user is told by mail when it changes.');
    const isMe = user.id === api.currentUser().id;
    const current = field('Current password', { type: 'password', autocomplete: 'current-password' },
      'Needed to change your own email.');
    current.wrapper.hidden = true;
    email.input.addEventListener('input', () => {
      current.wrapper.hidden = !isMe || email.input.value.trim().toLowerCase() === user.email;
    });
    const save = h('button', { type: 'submit', class: 'primary' }, 'Save');
    const saving = form({
      onsubmit: () => guarded(save, () => {
        const changes = {};
        if (email.input.value.trim().toLowerCase() !== user.email) {
          changes.email = email.input.value.trim();
          if (current.input.value) changes.current_password = current.input.value;
        }
        if (username.input.value.trim() !== user.username) changes.username = username.input.value.trim();
        const name = fullName.input.value.trim();
        if (name !== (user.full_name ?? '')) changes.full_name = name || null;
        if (superuser.input.checked !== user.is_superuser) changes.is_superuser = superuser.input.checked;
        if (password.input.value) changes.password = password.input.value;
        return api.patch(base, changes, { ifMatch: etag });
      }, 'Saved.'),
    }, email.wrapper, current.wrapper, username.wrapper, fullName.wrapper, superuser.wrapper, password.wrapper, save);

    const toggle = user.is_active
      ? h('button', { type: 'button', class: 'danger' }, 'Deactivate')
      : h('button', { type: 'button' }, 'Restore');
    toggle.addEventListener('click', () => (user.is_active
      ? guarded(toggle, () => api.del(base, { ifMatch: etag }), 'Deactivated: the user cannot sign in, and their sessions ended.')
      : guarded(toggle, () => api.post(`${base}/restore`), 'Restored.')));
    const unlock = h('button', { type: 'button' }, 'Unlock');
    unlock.addEventListener('click', () => guarded(unlock, () => api.post(`${base}/unlock`), 'Unlocked: failed sign-ins no longer hold the user back.'));
    const reset = h('button', { type: 'button' }, 'Reset second factor');
    reset.addEventListener('click', () => act(account, reset, async () => {
      await api.del(`${base}/mfa`);
      account.ok('The second factor is off and every session of the user ended.');
      loadMethods();
      loadSessions();
    }));
    const endAll = h('button', { type: 'button' }, 'End all sessions');
    endAll.addEventListener('click', () => act(account, endAll, async () => {
      await api.del(`${base}/sessions`);
      account.ok('Every session of the user ended.');
      loadSessions();
    }));
    return h('div', {},
      h('dl', { class: 'facts' },
        h('dt', {}, 'Status'), h('dd', {}, user.is_active ? 'Active' : 'Deactivated'),
        h('dt', {}, 'Email verified'), h('dd', {}, user.is_verified ? 'Yes' : 'No'),
        h('dt', {}, 'Created'), h('dd', {}, new Date(user.created_at).toLocaleString()),
        h('dt', {}, 'Last sign-in'), h('dd', {}, user.last_login_at ? new Date(user.last_login_at).toLocaleString() : 'Never'),
        h('dt', {}, 'Id'), h('dd', { class: 'mono' }, user.id)),
      saving,
      h('div', { class: 'actions' }, toggle, unlock, reset, endAll));
  }
  account.fill(editor());
  root.append(sessions.el, methods.el, tokens.el, events.el);

  const sessionsList = h('div');
  sessions.fill(sessionsList);
  const loadSessions = () => act(sessions, null, async () => {
    const { body } = await api.get(`${base}/sessions`);
    replace(sessionsList, sessionsTable(body));
  });

  const methodsList = h('div');
  methods.fill(methodsList);
  const loadMethods = () => act(methods, null, async () => {
    const { body } = await api.get(`${base}/sign-in-methods`);
    const removeAll = h('button', { type: 'button' }, 'Remove all passkeys');
    removeAll.addEventListener('click', () => act(methods, removeAll, async () => {
      await api.del(`${base}/passkeys`);
      methods.ok('Passkeys removed; every session of the user ended.');
      loadMethods();
      loadSessions();
    }));
    replace(methodsList,
      h('dl', { class: 'facts' },
        h('dt', {}, 'Password'), h('dd', {}, body.password ? 'Set' : 'None'),
        h('dt', {}, 'Authenticator app'), h('dd', {}, body.totp ? `On (${body.recovery_codes_left} recovery codes left)` : 'Off'),
        h('dt', {}, 'Access tokens'), h('dd', {}, String(body.tokens))),
      h('h3', {}, 'Passkeys'), passkeysTable(body.passkeys),
      body.passkeys.length ? removeAll : null,
      h('h3', {}, 'Linked accounts'), identitiesTable(body.identities));
  });

  const tokensList = h('div');
  tokens.fill(tokensList);
  const loadTokens = () => act(tokens, null, async () => {
    const { body } = await api.get(`${base}/tokens`);
    replace(tokensList, tokensTable(body, (t, button) => act(tokens, button, async () => {
      await api.del(`${base}/tokens/${t.id}`);
      tokens.ok(`Token ${t.name} revoked.`);
      loadTokens();
    })));
  });

  cursorList(events, async (cursor) => {
    const query = new URLSearchParams({ user_id: id, limit: '10' });
    if (cursor) query.set('cursor', cursor);
    return (await api.get(`/api/audit-events?${query}`)).body;
  }, (items) => eventsTable(items, true));

  loadSessions();
  loadMethods();
  loadTokens();
}
