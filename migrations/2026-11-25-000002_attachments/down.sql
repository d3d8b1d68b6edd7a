DROP TABLE inbound_refusals, attachment_deliveries, attachments, blobs, blob_chunks;
