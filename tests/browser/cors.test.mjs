// CORS as a browser enforces it: a page from an origin listed in
// CORS_ORIGINS logs in, reads /api/auth/me with fetch, reads its ETag and
// sends it back in If-Match (a preflighted PATCH); the same page from an
// origin that is not listed is blocked by the browser.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { API, EMAIL, PASSWORD, launch, offline } from './browser.mjs';

const ALLOWED_PORT = Number(process.env.ALLOWED_ORIGIN_PORT);
const OTHER_PORT = Number(process.env.OTHER_ORIGIN_PORT);
assert.ok(ALLOWED_PORT && OTHER_PORT, 'ALLOWED_ORIGIN_PORT and OTHER_ORIGIN_PORT must be set');

// The same client page, served from either origin.
const PAGE = `<!doctype html><meta charset="utf-8"><title>client</title>
<script>
async function run(api, email, password) {
  const login = await fetch(api + '/api/auth/login', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email, password }),
  });
  const tokens = await login.json();
  const me = await fetch(api + '/api/auth/me', {
    headers: { authorization: 'Bearer ' + tokens.access_token },
  });
  const user = await me.json();
  const etag = me.headers.get('etag');
  const patch = (tag) => fetch(api + '/api/users/' + user.id, {
    method: 'PATCH',
    headers: {
      authorization: 'Bearer ' + tokens.access_token,
      'content-type': 'application/json',
      'if-match': tag,
    },
    body: JSON.stringify({ full_name: user.full_name }),
  }).then((r) => r.status);
  return {
    login: login.status, me: me.status, user, etag,
    stale: await patch('"999999"'), current: await patch(etag),
  };
}
</script>`;

const servers = [ALLOWED_PORT, OTHER_PORT].map((port) => {
  const server = createServer((_, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(PAGE);
  });
  server.listen(port, '127.0.0.1');
  return server;
});
after(() => servers.forEach((s) => s.close()));

async function callFrom(port) {
  const browser = await launch();
  try {
    const context = await browser.newContext();
    await offline(context);
    const page = await context.newPage();
    const console = [];
    page.on('console', (msg) => console.push(msg.text()));
    await page.goto(`http://127.0.0.1:${port}/`);
    const outcome = await page.evaluate(
      ([api, email, password]) =>
        run(api, email, password).then(
          (value) => ({ ok: true, value }),
          (err) => ({ ok: false, error: String(err) }),
        ),
      [API, EMAIL, PASSWORD],
    );
    return { outcome, console };
  } finally {
    await browser.close();
  }
}

test('a page from an allowed origin logs in and reads /api/auth/me', async () => {
  const { outcome } = await callFrom(ALLOWED_PORT);
  assert.ok(outcome.ok, `fetch failed: ${outcome.error}`);
  assert.equal(outcome.value.login, 200);
  assert.equal(outcome.value.me, 200);
  assert.equal(outcome.value.user.email, EMAIL);
  // The ETag is exposed, and a PATCH with If-Match passes the preflight.
  assert.match(outcome.value.etag ?? '', /^"\d+"$/);
  assert.equal(outcome.value.stale, 412);
  assert.equal(outcome.value.current, 200);
});

test('a page from an origin not listed is blocked by the browser', async () => {
  const { outcome, console } = await callFrom(OTHER_PORT);
  assert.equal(outcome.ok, false, 'the browser let the response through');
  assert.match(outcome.error, /TypeError: Failed to fetch/);
  assert.ok(
    console.some((line) => line.includes('CORS policy')),
    `Chromium reports a CORS block: ${console.join('\n')}`,
  );
});
