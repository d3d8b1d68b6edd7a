DROP TABLE change_attachments;
