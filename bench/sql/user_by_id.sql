-- W3 GET /api/users/{id}: authentication, then the user by primary key
-- (seeded ids are md5('user' || n)::uuid, so pgbench can pick them at random).
\set k random(0, :users - 1)
SELECT "users"."id", "users"."email", "users"."username", "users"."full_name", "users"."password_hash", "users"."is_active", "users"."is_superuser", "users"."created_at", "users"."updated_at", "users"."last_login_at", "users"."version" FROM "users" INNER JOIN "sessions" ON "users"."id" = "sessions"."user_id" WHERE "sessions"."id" = :sid AND "users"."id" = :uid AND "users"."is_active" = true AND "sessions"."revoked_at" IS NULL AND "sessions"."expires_at" > now() LIMIT 1;
SELECT "users"."id", "users"."email", "users"."username", "users"."full_name", "users"."password_hash", "users"."is_active", "users"."is_superuser", "users"."created_at", "users"."updated_at", "users"."last_login_at", "users"."version" FROM "users" WHERE "users"."id" = md5('user' || :k)::uuid LIMIT 1;
