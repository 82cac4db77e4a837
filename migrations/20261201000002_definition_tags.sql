-- Tags of definitions (issue 8: fleet operations by tag). The documents in
-- activity_definition_versions stay the source of truth; this column mirrors the current
-- version's `tags` so that lists and fleet selectors can filter in SQL (`tags @> $1`).
alter table activity_definitions add column tags text[] not null default '{}';

-- Existing definitions: the tags of their current version's document (none before this
-- migration, unless written by a newer build).
update activity_definitions d
   set tags = array(select jsonb_array_elements_text(v.document -> 'tags'))
  from activity_definition_versions v
 where v.definition_id = d.id
   and v.version = d.current_version
   and jsonb_typeof(v.document -> 'tags') = 'array';

create index activity_definitions_by_tags on activity_definitions using gin (tags);
