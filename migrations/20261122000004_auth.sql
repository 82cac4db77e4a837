-- API keys (stored hashed; the secret is shown once at creation) and the audit log.
create table api_keys (
    id           text primary key,
    name         text not null,
    role         text not null check (role in ('viewer', 'operator', 'admin')),
    -- SHA-256 of the secret part, hex.
    secret_hash  text not null,
    created_at   timestamptz not null default now(),
    expires_at   timestamptz,
    revoked_at   timestamptz,
    last_used_at timestamptz
);

-- One row per mutating call: who, what, on what, when, with which request id, and the answer.
create table audit_log (
    id         bigserial primary key,
    at         timestamptz not null default now(),
    key_id     text,
    key_name   text,
    role       text,
    action     text not null,
    target     text not null,
    request_id text not null,
    status     integer not null
);
create index audit_log_by_time on audit_log (at desc);
