-- 002_node_cert: the serial of the certificate a node joined with (sluice-node --join), so that
-- removing the node revokes exactly that certificate.
ALTER TABLE nodes ADD COLUMN serial TEXT;
