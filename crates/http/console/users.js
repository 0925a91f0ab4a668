// Superusers: the list of users (search, filters, sort, keyset pages) and
// the form for a new user.
import { h, field, replace, select, when, yesNo } from './dom.js';
import * as api from './api.js';
import { act, cursorList, form, section, table } from './widgets.js';

const PAGE = 20;

/** The users list. */
export function usersPage(root) {
  const place = section('All users');
  const search = field('Search users', { type: 'search', maxlength: '100', autocomplete: 'off', spellcheck: 'false' });
  const active = select('Active', [['', 'Any'], ['true', 'Active'], ['false', 'Deactivated']], '');
  const superuser = select('Superuser', [['', 'Any'], ['true', 'Superusers'], ['false', 'Others']], '');
  const sort = select('Sort by', [
    ['-created_at', 'Newest first'], ['created_at', 'Oldest first'],
    ['username', 'Username A–Z'], ['-username', 'Username Z–A'],
    ['email', 'Email A–Z'], ['-email', 'Email Z–A'],
  ], '-created_at');
  const total = h('p', { class: 'total', 'aria-live': 'polite' }, '\u00a0');
  replace(root,
    h('div', { class: 'title-row' },
      h('h1', { tabindex: '-1' }, 'Users'),
      h('button', { type: 'button', class: 'primary', onclick: () => { window.location.hash = '#/users/new'; } }, 'New user')),
    place.el);
  const list = cursorList(place, async (cursor) => {
    const query = new URLSearchParams({ limit: String(PAGE), sort: sort.input.value });
    if (search.input.value.trim()) query.set('search', search.input.value.trim());
    if (active.input.value) query.set('is_active', active.input.value);
    if (superuser.input.value) query.set('is_superuser', superuser.input.value);
    if (cursor) query.set('cursor', cursor);
    return (await api.get(`/api/users/?${query}`)).body;
  }, (items, page) => {
    replace(total, page.total === 1 ? '1 user' : `${page.total} users`);
    return table('Users', ['Username', 'Email', 'Name', 'Active', 'Superuser', 'Created'], items.map((u) => [
      h('a', { href: `#/users/${u.id}` }, u.username),
      u.email ?? '—',
      u.full_name ?? '',
      yesNo(u.is_active),
      yesNo(u.is_superuser),
      when(u.created_at),
    ]), 'No user matches.');
  }, [h('div', { class: 'filters', role: 'search' }, search.wrapper, active.wrapper, superuser.wrapper, sort.wrapper), total]);
  let typing = null;
  search.input.addEventListener('input', () => {
    clearTimeout(typing);
    typing = setTimeout(() => list.restart(), 250);
  });
  for (const control of [active, superuser, sort]) control.input.addEventListener('change', () => list.restart());
}

/** The form for a new user. */
export function newUserPage(root) {
  const place = section('Account');
  const email = field('Email', { type: 'email', autocomplete: 'off', required: true });
  const username = field('Username', { autocomplete: 'off', required: true, spellcheck: 'false' });
  const fullName = field('Full name', { autocomplete: 'off' });
  const password = field('Password', { type: 'password', autocomplete: 'new-password', required: true },
    '8 to 72 bytes; not the username or email, and not easy to guess.');
  const active = field('Active', { type: 'checkbox', checked: true });
  const superuser = field('Superuser', { type: 'checkbox' });
  const create = h('button', { type: 'submit', class: 'primary' }, 'Create user');
  place.fill(form({
    onsubmit: () => act(place, create, async () => {
      const body = {
        email: email.input.value.trim(),
        username: username.input.value.trim(),
        password: password.input.value,
        is_active: active.input.checked,
        is_superuser: superuser.input.checked,
      };
      if (fullName.input.value.trim()) body.full_name = fullName.input.value.trim();
      const created = await api.post('/api/users/', body);
      window.location.hash = `#/users/${created.body.id}`;
    }),
  }, email.wrapper, username.wrapper, fullName.wrapper, password.wrapper, active.wrapper, superuser.wrapper, create));
  replace(root, h('h1', { tabindex: '-1' }, 'New user'), place.el);
  email.input.focus();
}
