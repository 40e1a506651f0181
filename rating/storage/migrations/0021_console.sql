-- The management console (issue 19, decision 0032): its accounts, server-side sessions and the
-- audit of every login, failed login, lockout and logout. SQL that reads and writes these tables
-- is in console/storage.py; docs/console.md describes the security model.

CREATE TABLE console_users (
    user_id             bigserial   PRIMARY KEY,
    email               text        NOT NULL UNIQUE CHECK (email = lower(email) AND email LIKE '_%@_%'),  -- the login
    name                text        NOT NULL CHECK (name <> ''),
    role                text        NOT NULL CHECK (role IN ('customer', 'staff')),
    -- The configuration store's customer id (checked by `fairline users add` against the newest version);
    -- no foreign key: the customers table is filled by `fairline run`, which may not have seen it yet.
    customer_id         text        NULL,
    password_hash       text        NOT NULL,             -- argon2id, PHC string
    password_changed_at timestamptz NOT NULL,
    totp_secret         text        NULL,                 -- base32; NULL: not enrolled
    totp_last_step      bigint      NULL,                 -- the last TOTP time step accepted: a code is used once
    disabled_at         timestamptz NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    CHECK ((role = 'customer') = (customer_id IS NOT NULL))
);
CREATE INDEX console_users_customer ON console_users (customer_id);

-- A session is known by the SHA-256 of its cookie's token: the table alone opens no session.
CREATE TABLE console_sessions (
    token_sha256  text        PRIMARY KEY,
    user_id       bigint      NOT NULL REFERENCES console_users ON DELETE CASCADE,
    -- 'totp': the password was right, the code is still due; 'enrol': staff without TOTP must enrol first;
    -- 'full': signed in.
    stage         text        NOT NULL CHECK (stage IN ('totp', 'enrol', 'full')),
    csrf_token    text        NOT NULL,
    pending_totp  text        NULL,                       -- the secret being enrolled, until a code confirms it
    address       text        NOT NULL,
    created_at    timestamptz NOT NULL,
    last_seen_at  timestamptz NOT NULL
);
CREATE INDEX console_sessions_user ON console_sessions (user_id);

-- Append-only. Throttling reads it too: failures per login and per address since the window began.
CREATE TABLE console_audit (
    id       bigserial   PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    event    text        NOT NULL CHECK (event IN ('login', 'login_failed', 'lockout', 'login_refused', 'logout',
                                                   'password_changed', 'totp_enrolled', 'user_added', 'user_reset',
                                                   'user_disabled')),
    email    text        NOT NULL,                        -- as typed for a failed login (lower-cased)
    user_id  bigint      NULL REFERENCES console_users,
    address  text        NOT NULL DEFAULT '',             -- the client's address; '' for the command line
    detail   text        NOT NULL DEFAULT ''
);
CREATE INDEX console_audit_email ON console_audit (email, at);
CREATE INDEX console_audit_address ON console_audit (address, at) WHERE event = 'login_failed';

-- "My calls": a customer's CDRs newest first, a page at a time by keyset (started_at, call_id).
CREATE INDEX cdrs_customer_started ON cdrs (customer_id, started_at, call_id);
