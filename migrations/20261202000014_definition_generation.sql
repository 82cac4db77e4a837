-- A counter of changes to what event ingress reads from the definitions (which are enabled,
-- their current version, deleted or not, their trigger kind). API processes cache each event
-- type's definitions with the counter they were read at, and every write of an event's
-- outcome commits only while the counter is unchanged (otherwise it reloads and retries), so
-- the cache never makes an event see a definition as it no longer is.
create table definition_generation (
    only_row boolean primary key default true check (only_row),
    n        bigint not null
);
insert into definition_generation (n) values (0);

create function bump_definition_generation() returns trigger language plpgsql as $$
begin
    update definition_generation set n = n + 1;
    return null;
end $$;

create trigger definitions_changed
    after insert or delete or truncate or update of current_version, enabled, deleted_at, trigger_kind
    on activity_definitions for each statement execute function bump_definition_generation();
