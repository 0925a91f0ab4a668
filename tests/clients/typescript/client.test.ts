// A client a TypeScript team would write: types generated from the served
// OpenAPI document, requests through openapi-fetch. `tsc --strict` checks
// that the document describes what a client needs; running it checks that
// the server answers as described.
import assert from "node:assert/strict";
import { test } from "node:test";

import createClient from "openapi-fetch";

import type { paths } from "./generated/schema.js";

const baseUrl = process.env.USERHUB_URL ?? "http://127.0.0.1:8000";
const rootEmail = process.env.USERHUB_EMAIL ?? "";
const rootPassword = process.env.USERHUB_PASSWORD ?? "";

function bearer(token: string) {
  return { Authorization: `Bearer ${token}` };
}

test("register, log in, refresh, read oneself and list users", async () => {
  const client = createClient<paths>({ baseUrl });
  const suffix = Math.random().toString(36).slice(2, 10);
  const email = `ts-${suffix}@example.com`;
  const password = "Quartz-Lantern-Orbit-47";

  const registered = await client.POST("/api/auth/register", {
    body: { email, username: `ts_${suffix}`, password, full_name: "Type Script" },
  });
  assert.equal(registered.response.status, 201);
  assert.ok(registered.data);
  const id: string = registered.data.id;
  assert.equal(registered.data.email, email);
  assert.equal(registered.data.is_superuser, false);

  const duplicate = await client.POST("/api/auth/register", {
    body: { email, username: `ts_${suffix}_2`, password },
  });
  assert.equal(duplicate.response.status, 409);
  assert.ok(duplicate.error);
  assert.equal(typeof duplicate.error.detail, "string");

  const login = await client.POST("/api/auth/login", { body: { email, password } });
  assert.equal(login.response.status, 200);
  assert.ok(login.data);
  const { access_token, refresh_token, token_type, expires_in } = login.data;
  assert.equal(token_type, "bearer");
  assert.ok(expires_in > 0);

  const me = await client.GET("/api/auth/me", { headers: bearer(access_token) });
  assert.equal(me.response.status, 200);
  assert.ok(me.data);
  assert.equal(me.data.id, id);
  assert.ok(me.response.headers.get("etag"));

  const refreshed = await client.POST("/api/auth/refresh", { body: { refresh_token } });
  assert.equal(refreshed.response.status, 200);
  assert.ok(refreshed.data);
  assert.notEqual(refreshed.data.refresh_token, refresh_token);

  const wrong = await client.POST("/api/auth/login", {
    body: { email, password: "not the password" },
  });
  assert.equal(wrong.response.status, 401);
  // The error bodies of login differ by status; RFC 6749's `error` narrows them.
  const refused = wrong.error;
  assert.ok(refused && "error" in refused);
  assert.equal(refused.error, "invalid_grant");
  assert.equal(refused.error_description, refused.detail);

  const root = await client.POST("/api/auth/login", {
    body: { email: rootEmail, password: rootPassword },
  });
  assert.ok(root.data, "the first superuser logs in");
  const page = await client.GET("/api/users", {
    headers: bearer(root.data.access_token),
    params: { query: { limit: 1, sort: "-created_at" } },
  });
  assert.equal(page.response.status, 200);
  assert.ok(page.data);
  assert.equal(page.data.items.length, 1);
  assert.ok(page.data.total >= 2);
  const cursor: string | null = page.data.next_cursor;
  assert.ok(cursor);
  const next = await client.GET("/api/users", {
    headers: bearer(root.data.access_token),
    params: { query: { limit: 1, sort: "-created_at", cursor } },
  });
  assert.equal(next.response.status, 200);
  assert.ok(next.data);
  assert.notEqual(next.data.items[0]?.id, page.data.items[0]?.id);
});
