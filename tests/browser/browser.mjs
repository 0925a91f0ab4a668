// Shared set-up: headless Chromium from the system, with no way out to the
// network, and the server under test from the environment.
import { chromium } from 'playwright-core';

/** The server under test, e.g. `http://127.0.0.1:8123`. */
export const API = process.env.USERHUB_URL;
/** The first superuser's credentials. */
export const EMAIL = process.env.USERHUB_EMAIL;
export const PASSWORD = process.env.USERHUB_PASSWORD;
/** Where screenshots go. */
export const ARTIFACTS = process.env.ARTIFACTS_DIR ?? 'build/browser';

if (!API || !EMAIL || !PASSWORD) {
  throw new Error('USERHUB_URL, USERHUB_EMAIL and USERHUB_PASSWORD must be set (scripts/browser-test.sh does)');
}

/** Launches Chromium headless with a fresh, throw-away profile. */
export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
      '--disable-quic',
      '--disable-sync',
    ],
  });
}

/**
 * Refuses every request that leaves the machine and records it, so a test
 * can assert that a page works with no network at all.
 */
export async function offline(context) {
  const escaped = [];
  await context.route('**/*', (route) => {
    const { hostname } = new URL(route.request().url());
    if (hostname === '127.0.0.1' || hostname === 'localhost' || hostname.endsWith('.localhost')) {
      return route.continue();
    }
    escaped.push(route.request().url());
    return route.abort('internetdisconnected');
  });
  return escaped;
}
