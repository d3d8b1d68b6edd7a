-- The hub subscribes at a TMF supplier once per API it follows: trouble tickets (TMF621) and,
-- for a supplier keeping its change legs in its own tool, change requests (TMF655).
ALTER TABLE tmf_supplier_subscriptions ADD COLUMN api TEXT NOT NULL DEFAULT 'troubleTicket';
ALTER TABLE tmf_supplier_subscriptions DROP CONSTRAINT tmf_supplier_subscriptions_pkey;
ALTER TABLE tmf_supplier_subscriptions ADD PRIMARY KEY (supplier_id, api);
