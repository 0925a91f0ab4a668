// Pieces every page uses: sections, tables, messages, and the lists of
// sessions, passkeys, identities, tokens and events.
import { h, replace, uid, when, yesNo } from './dom.js';
import { ApiError, messageOf } from './api.js';

/**
 * A region named by its level-2 heading, with a place for messages: `alert`
 * (role alert) for errors, `status` for news.
 */
export function section(title, ...children) {
  const id = uid('s');
  const alert = h('div', { role: 'alert', class: 'alert' });
  const status = h('div', { role: 'status', class: 'status' });
  const body = h('div', { class: 'section-body', 'aria-busy': 'true' });
  const el = h('section', { 'aria-labelledby': id, class: 'card' },
    h('h2', { id }, title), alert, status, body, ...children);
  return {
    el,
    body,
    /** Shows an error's detail (or clears the message with null). */
    fail(err) {
      if (err) replace(status);
      replace(alert, err ? messageOf(err) : '');
    },
    /** Says something went well. */
    ok(text) {
      replace(alert);
      replace(status, text);
    },
    /** Replaces the section's content once its data arrived. */
    fill(...nodes) {
      replace(body, ...nodes);
      body.setAttribute('aria-busy', 'false');
    },
  };
}

/**
 * Runs `action` for a button or form: disables the trigger meanwhile, and
 * shows a failure in `place` (a section). Returns the action's result, or
 * undefined when it failed.
 */
export async function act(place, trigger, action) {
  trigger?.setAttribute('aria-disabled', 'true');
  if (trigger) trigger.disabled = true;
  try {
    place.fail(null);
    return await action();
  } catch (err) {
    place.fail(err);
    return undefined;
  } finally {
    if (trigger) {
      trigger.disabled = false;
      trigger.removeAttribute('aria-disabled');
    }
  }
}

/**
 * A save refused with 412: says the user changed meanwhile, and offers a
 * "Reload" button that runs `reload` (which redraws the form).
 */
export function changedMeanwhile(place, reload) {
  const again = h('button', { type: 'button', onclick: () => act(place, again, reload) }, 'Reload');
  place.fail(new ApiError(412, { detail: 'This user was changed meanwhile (in another tab or by someone else). Reload to see the changes, then save again.' }));
  place.body.prepend(h('div', { class: 'conflict' }, again));
}

/** A form whose submit runs `onsubmit` (never a page load). */
export function form(props, ...children) {
  return h('form', {
    ...props,
    novalidate: true,
    onsubmit: (event) => {
      event.preventDefault();
      props.onsubmit(event);
    },
  }, ...children);
}

/** A table in a scrolling box, with a caption for screen readers. */
export function table(caption, headers, rows, empty = 'None') {
  if (rows.length === 0) return h('p', { class: 'muted' }, empty);
  return h('div', { class: 'table-wrap', tabindex: '0', role: 'group', 'aria-label': caption },
    h('table', {},
      h('caption', { class: 'visually-hidden' }, caption),
      h('thead', {}, h('tr', {}, headers.map((text) => h('th', { scope: 'col' }, text)))),
      h('tbody', {}, rows.map((cells) => h('tr', {}, cells.map((cell) => h('td', {}, cell)))))));
}

/** A list of sessions; `end(session)` ends one (omitted: no buttons). */
export function sessionsTable(sessions, end) {
  return table('Sessions', ['Started', 'Last used', 'Client', 'Address', ''], sessions.map((s) => [
    when(s.created_at),
    when(s.last_used_at),
    s.user_agent ?? '—',
    s.ip ?? '—',
    s.current ? h('span', { class: 'badge' }, 'This session')
      : end ? h('button', { type: 'button', class: 'small', 'aria-label': `End session started ${s.created_at}`, onclick: (e) => end(s, e.currentTarget) }, 'End') : '',
  ]), 'No live sessions');
}

/** A list of passkeys; `remove(passkey)` adds a button per row. */
export function passkeysTable(passkeys, remove) {
  return table('Passkeys', ['Name', 'Added', 'Last used', 'Synced', ''], passkeys.map((p) => [
    p.name,
    when(p.created_at),
    when(p.last_used_at),
    yesNo(p.backed_up),
    remove ? h('button', { type: 'button', class: 'small', 'aria-label': `Remove passkey ${p.name}`, onclick: (e) => remove(p, e.currentTarget) }, 'Remove') : '',
  ]), 'No passkeys');
}

/** A list of linked provider identities; `unlink(identity)` adds buttons. */
export function identitiesTable(identities, unlink) {
  return table('Linked accounts', ['Provider', 'Subject', 'Email', 'Linked', ''], identities.map((i) => [
    i.provider,
    i.subject,
    i.email ?? '—',
    when(i.linked_at),
    unlink ? h('button', { type: 'button', class: 'small', 'aria-label': `Unlink ${i.provider}`, onclick: (e) => unlink(i, e.currentTarget) }, 'Unlink') : '',
  ]), 'No linked accounts');
}

/** A list of personal access tokens; `revoke(token)` adds buttons. */
export function tokensTable(tokens, revoke) {
  return table('Access tokens', ['Name', 'Scopes', 'Prefix', 'Created', 'Expires', 'Last used', ''], tokens.map((t) => [
    t.name,
    t.scopes.join(', '),
    h('code', {}, t.prefix),
    when(t.created_at),
    when(t.expires_at),
    when(t.last_used_at),
    revoke ? h('button', { type: 'button', class: 'small', 'aria-label': `Revoke token ${t.name}`, onclick: (e) => revoke(t, e.currentTarget) }, 'Revoke') : '',
  ]), 'No access tokens');
}

/** Audit events, newest first. */
export function eventsTable(events, withPeople = false) {
  const headers = ['When', 'Event', 'Outcome', ...(withPeople ? ['Actor', 'Subject'] : []), 'Address', 'Details'];
  return table('Events', headers, events.map((e) => [
    when(e.at),
    h('code', {}, e.type),
    e.outcome,
    ...(withPeople ? [person(e.actor_id), person(e.subject_id)] : []),
    e.ip ?? '—',
    e.details && Object.keys(e.details).length ? h('code', { class: 'details' }, JSON.stringify(e.details)) : '—',
  ]), 'No events');
}

function person(id) {
  return id ? h('a', { href: `#/users/${id}`, class: 'mono' }, id.slice(0, 8) + '…') : '—';
}

/**
 * A page of items fetched with a cursor, with "Previous page" and "Next
 * page" buttons. `load(cursor)` resolves to `{items, next_cursor, …}`;
 * `render(items, page)` to nodes; `before` are nodes shown above (filters).
 */
export function cursorList(place, load, render, before = []) {
  const more = h('button', { type: 'button', hidden: true }, 'Next page');
  const back = h('button', { type: 'button', hidden: true }, 'Previous page');
  const holder = h('div', { class: 'rows', 'aria-busy': 'true' });
  const stack = [];
  let next = null;
  let generation = 0;
  async function show(cursor) {
    const mine = ++generation;
    holder.setAttribute('aria-busy', 'true');
    const page = await act(place, null, () => load(cursor));
    // An older answer arriving late must not replace a newer one.
    if (!page || mine !== generation) return;
    next = page.next_cursor;
    replace(holder, render(page.items, page));
    holder.setAttribute('aria-busy', 'false');
    more.hidden = !next;
    back.hidden = stack.length === 0;
  }
  more.addEventListener('click', () => {
    stack.push(next);
    show(next);
  });
  back.addEventListener('click', () => {
    stack.pop();
    show(stack.at(-1) ?? null);
  });
  place.fill(...before, holder, h('div', { class: 'pager' }, back, more));
  show(null);
  return {
    reload: () => show(stack.at(-1) ?? null),
    restart: () => {
      stack.length = 0;
      show(null);
    },
  };
}

/** A secret shown once, with a line saying so. */
export function shownOnce(label, value) {
  const id = uid();
  return h('div', { class: 'secret' },
    h('label', { for: id }, label),
    h('input', { id, readonly: true, value, class: 'mono', spellcheck: 'false' }),
    h('p', { class: 'hint' }, 'Copy it now: it is not shown again.'));
}
