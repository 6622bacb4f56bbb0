-- AIP-155 request ids: a create or record call sent with a request_id claims it in the same
-- transaction as its write, and keeps its answer for retries. `key` is a hash of the caller's
-- subject and the id, so one caller's id cannot pre-empt another's; `request_hash` binds the id
-- to the request's content. Forgotten after seven days.
CREATE TABLE idempotency_keys (
    key          TEXT PRIMARY KEY,
    method       TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    -- The call that holds the claim, so that its later transactions recognise their own.
    call_id      TEXT NOT NULL,
    -- The answer, protobuf in base64; NULL until the call has answered.
    response     TEXT,
    create_time  TEXT NOT NULL
);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (create_time);
