DROP INDEX tmf_subscriptions_by_principal;
DROP TABLE tmf_deliveries;
