// The console's shell: resumes the tab's session, finishes a provider's
// redirect, and shows the page the address names (`#/users/…`).
import { h, replace } from './dom.js';
import * as api from './api.js';
import { finishProviderSignIn, signInPage } from './signin.js';
import { accountPage } from './account.js';
import { newUserPage, usersPage } from './users.js';
import { userPage } from './user.js';
import { auditPage } from './audit.js';
import { webhookPage, webhooksPage } from './webhooks.js';

const root = document.getElementById('app');
let providers = [];
let notice = null;
/** A message for the next page shown: `[role, text]`. */
let flash = null;
let leaving = false;

const CALLBACK = /^\/api\/auth\/oauth\/[^/]+\/callback$/;
const ASSOCIATE = /^\/api\/auth\/oauth\/[^/]+\/associate\/callback$/;

/** The page for the address's fragment, or null when not allowed. */
function route(main, me) {
  const [, first = 'account', second] = window.location.hash.split('/');
  const admin = me.is_superuser;
  if (first === 'users' && admin) {
    if (second === 'new') return newUserPage(main);
    if (second) return userPage(main, decodeURIComponent(second));
    return usersPage(main);
  }
  if (first === 'audit' && admin) return auditPage(main);
  if (first === 'webhooks' && admin) return second ? webhookPage(main, decodeURIComponent(second)) : webhooksPage(main);
  if (first !== 'account') {
    window.history.replaceState(null, '', '#/account');
  }
  return accountPage(main, providers);
}

function render() {
  const me = api.currentUser();
  if (!me) {
    document.title = 'Sign in · UserHub';
    signInPage(root, providers, notice);
    notice = null;
    return;
  }
  const [, first = 'account'] = window.location.hash.split('/');
  const link = (href, text, key) => h('a', { href, 'aria-current': first === key ? 'page' : undefined }, text);
  const signOut = h('button', { type: 'button', class: 'link' }, 'Sign out');
  signOut.addEventListener('click', () => {
    leaving = true;
    api.signOut();
  });
  const main = h('main', { id: 'main' });
  replace(root,
    h('a', { href: '#main', class: 'skip' }, 'Skip to content'),
    h('header', { class: 'top' },
      h('span', { class: 'brand' }, 'UserHub'),
      h('nav', { 'aria-label': 'Console' },
        h('ul', {},
          h('li', {}, link('#/account', 'My account', 'account')),
          me.is_superuser ? [
            h('li', {}, link('#/users', 'Users', 'users')),
            h('li', {}, link('#/audit', 'Audit', 'audit')),
            h('li', {}, link('#/webhooks', 'Webhooks', 'webhooks')),
          ] : null,
          h('li', {}, signOut))),
      h('span', { class: 'who' }, me.username)),
    main);
  route(main, me);
  if (flash) {
    const [role, text] = flash;
    main.prepend(h('div', { role, class: role }, text));
    flash = null;
  }
  document.title = `${main.querySelector('h1')?.textContent || 'Console'} · UserHub`;
  main.querySelector('h1')?.focus({ preventScroll: true });
}

let signedIn = null;
api.onChange((me) => {
  // A 401 mid-way takes the user back to sign-in, saying why.
  if (signedIn && !me && !leaving) notice = 'You were signed out. Sign in again.';
  leaving = false;
  signedIn = me?.id ?? null;
  render();
});
window.addEventListener('hashchange', () => {
  if (api.currentUser()) render();
});

async function start() {
  try {
    providers = (await (await fetch('/admin/config.json')).json()).providers ?? [];
  } catch {
    providers = [];
  }
  const path = window.location.pathname;
  if (CALLBACK.test(path)) {
    const outcome = await finishProviderSignIn(root);
    if (outcome !== true) {
      notice = outcome;
      render();
    }
    return;
  }
  if (ASSOCIATE.test(path)) {
    const url = path + window.location.search;
    window.history.replaceState(null, '', '/admin/#/account');
    if (await api.resume()) {
      try {
        await api.get(url);
        flash = ['status', 'The account is linked.'];
      } catch (err) {
        flash = ['alert', api.messageOf(err)];
      }
      render();
      return;
    }
  } else if (await api.resume()) {
    return;
  }
  render();
}

start();
