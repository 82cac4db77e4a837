-- Run by the compose Postgres on first start: taskfactory's own database beside Temporal's.
create database taskfactory;
