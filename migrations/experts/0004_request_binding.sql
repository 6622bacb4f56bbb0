-- Idempotency keys bound to their request: a draw remembers a hash of the request that opened
-- it, so the same key with a different request is refused. (The request_id column now holds
-- the key scoped to its caller, a hash of caller and key.)
ALTER TABLE draws ADD COLUMN request_hash TEXT NOT NULL DEFAULT '';
