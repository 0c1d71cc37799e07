-- How a delivered row travelled (issue 17): the TLS protocol of the session (`TLSv1.3`), or NULL
-- without TLS. Recorded for journal copies, for the intake's health on the connector page, in
-- place of a note appended to the reply text.
ALTER TABLE queue ADD COLUMN tls TEXT;
