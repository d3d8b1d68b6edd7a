DROP TABLE tmf_supplier_subscriptions;
DROP TABLE tmf_external_ids;
DROP TABLE tmf_subscriptions;
