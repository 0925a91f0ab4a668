// Superusers: the audit trail, newest first, with its filters.
import { h, field, replace } from './dom.js';
import * as api from './api.js';
import { cursorList, eventsTable, form, section } from './widgets.js';

/** Audit types, offered as suggestions for the type filter. */
const TYPES = [
  'user.registered', 'login.succeeded', 'login.failed', 'login.locked', 'token.reuse_detected',
  'session.ended', 'sessions.ended_all', 'password.changed', 'password.reset_requested', 'password.reset',
  'email.verified', 'email.reverted', 'user.created', 'user.updated', 'user.deleted', 'user.restored',
  'user.unlocked', 'mfa.enabled', 'mfa.disabled', 'mfa.failed', 'mfa.recovery_codes_regenerated',
  'mfa.recovery_code_used', 'identity.linked', 'identity.unlinked', 'passkey.added', 'passkey.removed',
  'passkey.renamed', 'passkey.counter_regressed', 'token.created', 'token.revoked', 'webhook.created',
  'webhook.updated', 'webhook.deleted', 'webhook.disabled',
];

/** `datetime-local` gives local time without a zone; the API wants RFC 3339. */
function instant(value) {
  return value ? new Date(value).toISOString() : '';
}

/** The audit page. */
export function auditPage(root) {
  const filters = section('Filters');
  const results = section('Events');
  const user = field('User id', { autocomplete: 'off', spellcheck: 'false', class: 'mono' });
  const type = field('Type', { list: 'audit-types', autocomplete: 'off', spellcheck: 'false' });
  const since = field('Since', { type: 'datetime-local' });
  const until = field('Until', { type: 'datetime-local' });
  const apply = h('button', { type: 'submit', class: 'primary' }, 'Apply filters');
  const run = () => cursorList(results, async (cursor) => {
    const query = new URLSearchParams({ limit: '25' });
    const pairs = [['user_id', user.input.value.trim()], ['type', type.input.value.trim()],
      ['since', instant(since.input.value)], ['until', instant(until.input.value)], ['cursor', cursor]];
    for (const [key, value] of pairs) if (value) query.set(key, value);
    return (await api.get(`/api/audit-events?${query}`)).body;
  }, (items) => eventsTable(items, true));
  filters.fill(form({ onsubmit: run, class: 'filters' },
    user.wrapper, type.wrapper, since.wrapper, until.wrapper,
    h('datalist', { id: 'audit-types' }, TYPES.map((t) => h('option', { value: t }))),
    h('div', { class: 'actions' }, apply)));
  replace(root, h('h1', { tabindex: '-1' }, 'Audit'), filters.el, results.el);
  run();
}
