-- Web accounts of the service (biobank/service): one per app_user that may log in
-- through the browser, with its argon2 password hash and the failed-login counter
-- behind the lockout; and the server-side login sessions (the cookie holds only a
-- signed random token whose sha256 is session_id), so logout, a password change or
-- a deactivation ends a session at once.
CREATE TABLE web_account (
    user_name        VARCHAR PRIMARY KEY,   -- app_user.user_name
    password_hash    VARCHAR NOT NULL,      -- argon2id, PHC string
    failed_logins    INTEGER NOT NULL DEFAULT 0,
    locked_until     TIMESTAMP,             -- UTC; no login before this
    must_change      BOOLEAN NOT NULL DEFAULT FALSE,  -- set by an admin reset
    password_set_at  TIMESTAMP NOT NULL     -- UTC
);

CREATE TABLE web_session (
    session_id   VARCHAR PRIMARY KEY,       -- sha256 hex of the cookie's token
    user_name    VARCHAR NOT NULL,
    client       VARCHAR,                   -- client address at login
    created_at   TIMESTAMP NOT NULL,        -- UTC
    expires_at   TIMESTAMP NOT NULL,        -- UTC, absolute lifetime
    revoked_at   TIMESTAMP                  -- UTC, logout / password change / reset
);
