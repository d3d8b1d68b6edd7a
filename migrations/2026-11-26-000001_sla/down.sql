DROP TABLE sla_alerts;
DROP TABLE sla_clocks;
DROP TABLE sla_tickets;
DROP TABLE sla_configuration;
DROP TRIGGER events_mark_sla_dirty ON events;
DROP FUNCTION sla_mark_dirty();
DROP TABLE sla_dirty;
DROP SEQUENCE sla_dirty_seq;
