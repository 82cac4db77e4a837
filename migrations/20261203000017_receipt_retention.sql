-- Receipt retention: the pruner finds receipts and started event groups past the horizon by
-- time; these indexes keep it from scanning the whole tables on every pass.
create index event_receipts_prunable on event_receipts (received_at) where state <> 'pending';
create index event_groups_prunable on event_groups (coalesce(started_at, last_at)) where state in ('started', 'error');
