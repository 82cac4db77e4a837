-- Task code reports into the run log: a `reporter` role for workers' keys (events, external
-- job events and task events only), and artifacts a task attaches (a link, or inline content
-- up to 1 MiB kept here and served by GET /api/v1/artifacts/{id}).
alter table api_keys drop constraint api_keys_role_check;
alter table api_keys add constraint api_keys_role_check check (role in ('reporter', 'viewer', 'operator', 'admin'));

create table task_artifacts (
    id text primary key,
    run_workflow_id text not null,
    task_id text not null,
    name text not null,
    media_type text,
    url text,
    content bytea,
    size bigint not null default 0,
    created_at timestamptz not null default now(),
    check ((url is null) <> (content is null))
);
create index task_artifacts_task on task_artifacts (task_id);
