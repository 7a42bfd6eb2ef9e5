-- V1: the cluster's first schema. Accounts and sessions, scripts with their owners' named
-- versions, ship ownership, the durable input log and exactly-once request answers.
--
-- Times are unix seconds handed in by the caller (never the database's clock). Unsigned 64-bit
-- ids the protocol picks at random (client instances, request ids) are stored as the BIGINT
-- with the same bits; ship ids, positions and times are checked to fit in 0..2^63 instead, so
-- they sort as numbers. Names follow the world store's rule: 1-64 of [A-Za-z0-9_.-]. Sizes are
-- limited by the store's `Limits` before anything is sent here.
--
-- Never edit a migration that has been released: add V2__... (the runner refuses a database
-- whose applied migration differs from this build's copy).

CREATE TABLE accounts (
    name            TEXT PRIMARY KEY
                    CONSTRAINT accounts_name_valid CHECK (name ~ '^[A-Za-z0-9_.-]{1,64}$'),
    -- argon2 PHC string; hashing and verifying is the caller's work.
    password_phc    TEXT NOT NULL CHECK (octet_length(password_phc) BETWEEN 1 AND 512),
    role            TEXT NOT NULL CHECK (role IN ('player', 'admin')),
    created_unix_s  BIGINT NOT NULL CHECK (created_unix_s >= 0),
    -- Ships this account may own, when an admin set it (NULL: the server's default).
    max_ships       INTEGER CHECK (max_ships >= 0)
);

CREATE TABLE sessions (
    -- SHA-256 of the token's text; the token itself is never stored.
    token_sha256    BYTEA PRIMARY KEY CHECK (octet_length(token_sha256) = 32),
    account         TEXT NOT NULL
                    CONSTRAINT sessions_account_fkey REFERENCES accounts (name) ON DELETE CASCADE,
    opened_unix_s   BIGINT NOT NULL CHECK (opened_unix_s >= 0),
    expires_unix_s  BIGINT NOT NULL CHECK (expires_unix_s > opened_unix_s)
);
CREATE INDEX sessions_by_account ON sessions (account);
CREATE INDEX sessions_by_expiry ON sessions (expires_unix_s);

-- Modules by content: XXH3-128 of the bytes, big-endian.
CREATE TABLE script_modules (
    hash            BYTEA PRIMARY KEY CHECK (octet_length(hash) = 16),
    wasm            BYTEA NOT NULL,
    stored_unix_s   BIGINT NOT NULL CHECK (stored_unix_s >= 0)
);

-- One row per (owner, name): the newest version number, bumped under the row's lock so two
-- gateways naming the same script at once get two different versions.
CREATE TABLE script_names (
    owner           TEXT NOT NULL
                    CONSTRAINT script_names_owner_fkey REFERENCES accounts (name) ON DELETE CASCADE,
    name            TEXT NOT NULL
                    CONSTRAINT script_names_name_valid CHECK (name ~ '^[A-Za-z0-9_.-]{1,64}$'),
    latest_version  INTEGER NOT NULL CHECK (latest_version >= 1),
    PRIMARY KEY (owner, name)
);

CREATE TABLE script_versions (
    owner           TEXT NOT NULL,
    name            TEXT NOT NULL,
    version         INTEGER NOT NULL CHECK (version >= 1),
    hash            BYTEA NOT NULL
                    CONSTRAINT script_versions_hash_fkey REFERENCES script_modules (hash),
    uploaded_unix_s BIGINT NOT NULL CHECK (uploaded_unix_s >= 0),
    PRIMARY KEY (owner, name, version),
    FOREIGN KEY (owner, name) REFERENCES script_names (owner, name) ON DELETE CASCADE
);
CREATE INDEX script_versions_by_hash ON script_versions (hash);

-- Who owns which ship (no row: nobody's, or no such ship).
CREATE TABLE ships (
    ship_id             BIGINT PRIMARY KEY CHECK (ship_id >= 0),
    owner               TEXT NOT NULL
                        CONSTRAINT ships_owner_fkey REFERENCES accounts (name),
    owned_since_unix_s  BIGINT NOT NULL CHECK (owned_since_unix_s >= 0)
);
CREATE INDEX ships_by_owner ON ships (owner, ship_id);

-- The durable copy of each world's input log: postcard-encoded inputs by position.
CREATE TABLE input_log (
    world           TEXT NOT NULL
                    CONSTRAINT input_log_world_valid CHECK (world ~ '^[A-Za-z0-9_.-]{1,64}$'),
    position        BIGINT NOT NULL CHECK (position >= 0),
    input           BYTEA NOT NULL,
    -- The account that asked for it (NULL: the world itself or an operator). Not a foreign
    -- key: the log is history and outlives what it names.
    submitted_by    TEXT CHECK (submitted_by ~ '^[A-Za-z0-9_.-]{1,64}$'),
    at_unix_s       BIGINT NOT NULL CHECK (at_unix_s >= 0),
    PRIMARY KEY (world, position)
);

-- Claim numbers of requests being carried out, and the order answers were stored in.
CREATE SEQUENCE resume_order AS BIGINT;

-- Exactly-once answers by (session, client instance, request id). A row is 'in_flight' from the
-- `begin` that claimed it until its `finish` stores the answer; either way it lasts until
-- `expires_unix_s`, and goes with its session.
CREATE TABLE resume_answers (
    token_sha256    BYTEA NOT NULL
                    CONSTRAINT resume_answers_session_fkey
                    REFERENCES sessions (token_sha256) ON DELETE CASCADE,
    instance        BIGINT NOT NULL,
    request_id      BIGINT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('in_flight', 'answered')),
    claim           BIGINT NOT NULL DEFAULT nextval('resume_order'),
    -- Who asked last (a gateway's connection, opaque here): the answer goes there.
    waiting         TEXT NOT NULL CHECK (octet_length(waiting) BETWEEN 1 AND 256),
    answer          BYTEA,
    answered_order  BIGINT,
    begun_unix_s    BIGINT NOT NULL CHECK (begun_unix_s >= 0),
    expires_unix_s  BIGINT NOT NULL CHECK (expires_unix_s >= 0),
    PRIMARY KEY (token_sha256, instance, request_id),
    CONSTRAINT resume_answers_answer_iff_answered
        CHECK ((status = 'answered') = (answer IS NOT NULL AND answered_order IS NOT NULL))
);
CREATE INDEX resume_answers_by_expiry ON resume_answers (expires_unix_s);
CREATE INDEX resume_answers_answered
    ON resume_answers (token_sha256, instance, answered_order) WHERE status = 'answered';
