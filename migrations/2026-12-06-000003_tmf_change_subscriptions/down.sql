DELETE FROM tmf_supplier_subscriptions WHERE api <> 'troubleTicket';
ALTER TABLE tmf_supplier_subscriptions DROP CONSTRAINT tmf_supplier_subscriptions_pkey;
ALTER TABLE tmf_supplier_subscriptions DROP COLUMN api;
ALTER TABLE tmf_supplier_subscriptions ADD PRIMARY KEY (supplier_id);
