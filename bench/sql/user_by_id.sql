-- W3 GET /api/users/{id}: one statement, the caller's session check riding
-- along with the read (seeded ids are md5('user' || n)::uuid, so pgbench can
-- pick them at random).
\set k random(0, :users - 1)
SELECT "users"."id", "users"."email", "users"."username", "users"."full_name", "users"."password_hash", "users"."is_active", "users"."is_superuser", "users"."is_verified", "users"."created_at", "users"."updated_at", "users"."last_login_at", "users"."version", ("users"."id" = :uid AND "users"."is_active" = true AND EXISTS (SELECT 1 FROM "sessions" WHERE "sessions"."id" = :sid AND "sessions"."user_id" = :uid AND "sessions"."revoked_at" IS NULL AND "sessions"."expires_at" > now())) AS "authenticated" FROM "users" WHERE "users"."id" IN (:uid, md5('user' || :k)::uuid);
