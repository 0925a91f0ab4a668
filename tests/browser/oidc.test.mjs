// Provider sign-in from a front end on its own origin, as docs/API.md
// describes it: the page (an origin listed in CORS_ORIGINS, which is also
// OAUTH_REDIRECT_BASE_URL) asks the API for the authorization URL with
// `credentials: "include"`, the browser signs in at a real OpenID provider
// (oidc-provider), comes back to the page's own callback path, and the page
// forwards `code` and `state` to the API with the state cookie.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { API, launch, offline } from './browser.mjs';

const ALLOWED_PORT = Number(process.env.ALLOWED_ORIGIN_PORT);
const PROVIDER = process.env.OAUTH_PROVIDER_NAME;
assert.ok(ALLOWED_PORT && PROVIDER, 'ALLOWED_ORIGIN_PORT and OAUTH_PROVIDER_NAME must be set');

// The front end: a start page, and the page the provider sends the browser
// back to, which finishes the sign-in at the API.
const START = `<!doctype html><meta charset="utf-8"><title>front end</title>
<script>
async function start(api, provider) {
  const r = await fetch(api + '/api/auth/oauth/' + provider + '/authorize', { credentials: 'include' });
  return (await r.json()).authorization_url;
}
</script>`;
const CALLBACK = `<!doctype html><meta charset="utf-8"><title>signing in</title>
<script>
window.outcome = (async () => {
  const path = location.pathname + location.search;
  try {
    const r = await fetch(sessionStorage.getItem('api') + path, { credentials: 'include' });
    const body = await r.json();
    const me = body.access_token
      ? await fetch(sessionStorage.getItem('api') + '/api/auth/me', {
          headers: { authorization: 'Bearer ' + body.access_token },
        }).then((m) => m.json())
      : null;
    return { status: r.status, body, me };
  } catch (err) {
    return { error: String(err) };
  }
})();
</script>`;

const server = createServer((req, res) => {
  const page = req.url.startsWith(`/api/auth/oauth/${PROVIDER}/callback`) ? CALLBACK : START;
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
  res.end(page);
});
server.listen(ALLOWED_PORT, '127.0.0.1');
after(() => server.close());

/** Submits a form with `fields` to `action` on the current page. */
async function submit(page, action, fields) {
  await Promise.all([
    page.waitForNavigation(),
    page.evaluate(
      ([target, values]) => {
        const form = document.createElement('form');
        form.method = 'POST';
        form.action = target;
        for (const [name, value] of Object.entries(values)) {
          const input = document.createElement('input');
          input.name = name;
          input.value = value;
          form.append(input);
        }
        document.body.append(form);
        form.submit();
      },
      [action, fields],
    ),
  ]);
}

test('a front end on its own origin runs the provider sign-in with credentials', async () => {
  const browser = await launch();
  try {
    const context = await browser.newContext();
    await offline(context);
    const page = await context.newPage();
    await page.goto(`http://127.0.0.1:${ALLOWED_PORT}/`);
    await page.evaluate((api) => sessionStorage.setItem('api', api), API);
    const url = await page.evaluate(([api, provider]) => start(api, provider), [API, PROVIDER]);
    assert.match(url, /code_challenge_method=S256/);
    // At the provider: its login, then its consent page.
    await page.goto(url);
    for (let step = 0; step < 4 && !page.url().startsWith(`http://127.0.0.1:${ALLOWED_PORT}/`); step++) {
      const prompt = JSON.parse(await page.evaluate(() => document.body.innerText)).prompt;
      const here = new URL(page.url()).pathname;
      if (prompt === 'login') await submit(page, `${here}/login`, { login: 'frontend-user' });
      else if (prompt === 'consent') await submit(page, `${here}/confirm`, {});
      else assert.fail(`unexpected provider page ${page.url()}`);
    }
    // Back on the front end's own callback page, which calls the API.
    assert.ok(page.url().startsWith(`http://127.0.0.1:${ALLOWED_PORT}/api/auth/oauth/${PROVIDER}/callback?`), page.url());
    const outcome = await page.evaluate(() => window.outcome);
    assert.equal(outcome.error, undefined, `the browser blocked the answer: ${outcome.error}`);
    assert.equal(outcome.status, 200, JSON.stringify(outcome.body));
    assert.equal(outcome.body.token_type, 'bearer');
    assert.equal(outcome.me.email, 'frontend-user@example.com');
  } finally {
    await browser.close();
  }
});
