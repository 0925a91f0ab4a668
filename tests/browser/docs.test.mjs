// Swagger UI at /docs: authorize with the OAuth2 password flow, then call
// GET /api/auth/me from the page and see its 200, with no network at all.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { API, ARTIFACTS, EMAIL, PASSWORD, launch, offline } from './browser.mjs';

test('Swagger UI authorizes with the password flow and runs GET /api/auth/me', async () => {
  const browser = await launch();
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 1600 } });
    const escaped = await offline(context);
    const page = await context.newPage();
    const pageErrors = [];
    page.on('pageerror', (err) => pageErrors.push(String(err)));

    await page.goto(`${API}/docs`);
    await page.getByRole('button', { name: 'Authorize' }).first().click();

    // The OAuth2 block of the dialog: username, password, then its own
    // Authorize; no client id or secret, which UserHub does not use.
    const oauth = page.locator('.auth-container').filter({ hasText: 'oauth2' });
    await oauth.locator('#oauth_username').waitFor();
    for (const field of ['#client_id_password', '#client_secret_password', '#password_type']) {
      assert.equal(await oauth.locator(field).isVisible(), false, `${field} is shown`);
    }
    await oauth.locator('#oauth_username').fill(EMAIL);
    await oauth.locator('#oauth_password').fill(PASSWORD);
    await oauth.locator('button.authorize').click();
    // Swagger UI swaps Authorize for Logout once the token endpoint answered 200.
    await oauth.locator('button', { hasText: 'Logout' }).waitFor({ timeout: 10000 });
    await oauth.locator('button.btn-done').click();

    const me = page.locator('#operations-auth-me');
    await me.locator('.opblock-summary').click();
    // "Try it out" is on from the start (tryItOutEnabled).
    await me.locator('button.execute').click();

    const status = me.locator('.live-responses-table tr.response .response-col_status').first();
    await status.waitFor();
    assert.equal((await status.innerText()).trim(), '200');
    const body = await me.locator('.live-responses-table tr.response .response-col_description pre').first().innerText();
    assert.equal(JSON.parse(body).email, EMAIL);

    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'docs-me-200.png'), fullPage: false });
    await me.scrollIntoViewIfNeeded();
    await page.screenshot({ path: join(ARTIFACTS, 'docs-me-response.png') });

    assert.deepEqual(escaped, [], 'the page asked for nothing beyond the server');
    assert.deepEqual(pageErrors, [], 'no script errors');
  } finally {
    await browser.close();
  }
});
