// Superusers: webhooks, one webhook's settings and its deliveries.
import { h, field, replace, select, when } from './dom.js';
import * as api from './api.js';
import { act, cursorList, form, section, shownOnce, table } from './widgets.js';

function eventsOf(text) {
  return text.split(',').map((t) => t.trim()).filter(Boolean);
}

/** The list, and the form for a new webhook. */
export function webhooksPage(root) {
  const list = section('Endpoints');
  const adding = section('New webhook');
  const load = () => act(list, null, async () => {
    const { body } = await api.get('/api/webhooks');
    list.fill(table('Webhooks', ['URL', 'Events', 'Enabled', 'Description', 'Created'], body.map((w) => [
      h('a', { href: `#/webhooks/${w.id}` }, w.url),
      w.events.join(', '),
      w.enabled ? 'Yes' : `No${w.disabled_reason ? ` (${w.disabled_reason})` : ''}`,
      w.description ?? '',
      when(w.created_at),
    ]), 'No webhooks yet.'));
  });
  const url = field('URL', { type: 'url', required: true, autocomplete: 'off', spellcheck: 'false' },
    'https:// and a public address.');
  const events = field('Events', { value: '*', autocomplete: 'off', spellcheck: 'false' },
    'Audit event types, comma-separated, or * for all.');
  const description = field('Description', { autocomplete: 'off', maxlength: '200' });
  const create = h('button', { type: 'submit', class: 'primary' }, 'Create webhook');
  const secret = h('div');
  adding.fill(form({
    onsubmit: () => act(adding, create, async () => {
      const body = { url: url.input.value.trim(), events: eventsOf(events.input.value) };
      if (description.input.value.trim()) body.description = description.input.value.trim();
      const created = await api.post('/api/webhooks', body);
      url.input.value = '';
      replace(secret, shownOnce('Signing secret', created.body.secret));
      await load();
    }),
  }, url.wrapper, events.wrapper, description.wrapper, create), secret);
  replace(root, h('h1', { tabindex: '-1' }, 'Webhooks'), list.el, adding.el);
  load();
}

/** One webhook: edit, rotate, test, delete; its deliveries with retries. */
export async function webhookPage(root, id) {
  const base = `/api/webhooks/${encodeURIComponent(id)}`;
  const heading = h('h1', { tabindex: '-1' }, 'Webhook');
  const settings = section('Settings');
  const deliveries = section('Deliveries');
  replace(root, h('p', {}, h('a', { href: '#/webhooks' }, 'All webhooks')), heading, settings.el, deliveries.el);
  const answer = await act(settings, null, () => api.get(base));
  if (!answer) return;
  const hook = answer.body;
  replace(heading, hook.url);

  const url = field('URL', { type: 'url', value: hook.url, autocomplete: 'off', spellcheck: 'false' });
  const events = field('Events', { value: hook.events.join(', '), autocomplete: 'off', spellcheck: 'false' });
  const description = field('Description', { value: hook.description ?? '', autocomplete: 'off', maxlength: '200' });
  const enabled = field('Enabled', { type: 'checkbox', checked: hook.enabled });
  const save = h('button', { type: 'submit', class: 'primary' }, 'Save');
  const rotate = h('button', { type: 'button' }, 'Rotate secret');
  const test = h('button', { type: 'button' }, 'Send test event');
  const remove = h('button', { type: 'button', class: 'danger' }, 'Delete webhook');
  const secret = h('div');
  rotate.addEventListener('click', () => act(settings, rotate, async () => {
    const { body } = await api.post(`${base}/rotate-secret`);
    replace(secret, shownOnce('New signing secret', body.secret));
    settings.ok('Secret rotated; the old one also signs for 24 hours.');
  }));
  test.addEventListener('click', () => act(settings, test, async () => {
    await api.post(`${base}/test`);
    settings.ok('A test event is queued.');
    setTimeout(() => list.reload(), 1000);
  }));
  remove.addEventListener('click', () => act(settings, remove, async () => {
    await api.del(base);
    window.location.hash = '#/webhooks';
  }));
  settings.fill(
    hook.disabled_reason ? h('p', { class: 'warning' }, `Turned off: ${hook.disabled_reason}`) : null,
    form({
      onsubmit: () => act(settings, save, async () => {
        const body = {
          url: url.input.value.trim(),
          events: eventsOf(events.input.value),
          description: description.input.value.trim() || null,
          enabled: enabled.input.checked,
        };
        const saved = await api.patch(base, body);
        replace(heading, saved.body.url);
        settings.ok('Saved.');
      }),
    }, url.wrapper, events.wrapper, description.wrapper, enabled.wrapper, save),
    h('div', { class: 'actions' }, rotate, test, remove), secret);

  const status = select('Status', [['', 'Any'], ['pending', 'Pending'], ['delivered', 'Delivered'], ['failed', 'Failed']], '');
  const list = cursorList(deliveries, async (cursor) => {
    const query = new URLSearchParams({ limit: '20' });
    if (status.input.value) query.set('status', status.input.value);
    if (cursor) query.set('cursor', cursor);
    return (await api.get(`${base}/deliveries?${query}`)).body;
  }, (items) => table('Deliveries', ['Event', 'Status', 'Attempts', 'Last answer', 'Next attempt', 'Delivered', ''], items.map((d) => [
    h('code', {}, d.type),
    d.status,
    String(d.attempts),
    d.last_error ?? (d.last_status ? String(d.last_status) : '—'),
    when(d.next_attempt_at),
    when(d.delivered_at),
    d.status === 'delivered' ? '' : h('button', {
      type: 'button', class: 'small', 'aria-label': `Retry delivery of ${d.type} ${d.id}`,
      onclick: (e) => act(deliveries, e.currentTarget, async () => {
        await api.post(`${base}/deliveries/${d.id}/retry`);
        deliveries.ok('Retry queued.');
        setTimeout(() => list.reload(), 1000);
      }),
    }, 'Retry'),
  ]), 'No deliveries yet.'), [h('div', { class: 'filters' }, status.wrapper)]);
  status.input.addEventListener('change', () => list.restart());
}
