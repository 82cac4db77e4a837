-- Run by the compose Postgres on first start: taskfactory's own database beside Temporal's.
create database taskfactory;

-- The read-only role `sql` context sources run as (TASKFACTORY_CONTEXT_DATABASE_URL of the
-- worker and the API): it reads the schema `demo` and nothing else, not taskfactory's tables
-- (wiki/operations.md, "SQL context sources"). The password is for this local stack only.
create role taskfactory_context login password 'taskfactory_context';
\connect taskfactory
create schema demo;
grant usage on schema demo to taskfactory_context;
alter default privileges in schema demo grant select on tables to taskfactory_context;
alter role taskfactory_context in database taskfactory set search_path = demo;
create table demo.invoices (id text primary key, customer text not null, amount int not null, due date not null);
insert into demo.invoices values ('inv-1001', 'acme', 1200, current_date - 10), ('inv-1002', 'globex', 80, current_date - 3),
  ('inv-1003', 'initech', 450, current_date + 7), ('inv-1004', 'umbrella', 3100, current_date - 30);
