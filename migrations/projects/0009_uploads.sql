-- Resumable uploads (StartUpload, AppendUpload, FinishUpload): the bytes go to a file of their
-- own in the blob directory's uploads/ folder; nothing is a document until finished. An
-- upload untouched until expire_time is removed with its bytes.
CREATE TABLE uploads (
    id              TEXT PRIMARY KEY,
    project_code    TEXT NOT NULL,
    kind            TEXT NOT NULL,
    file_name       TEXT NOT NULL,
    media_type      TEXT NOT NULL,
    sealed_copies   BIGINT NOT NULL,
    expected_sha256 TEXT NOT NULL,
    -- The subject that started it: only it may append, finish or cancel.
    uploaded_by     TEXT NOT NULL,
    received_bytes  BIGINT NOT NULL,
    create_time     TEXT NOT NULL,
    expire_time     TEXT NOT NULL,
    -- The document made from it, once finished.
    document_id     TEXT
);
CREATE INDEX uploads_by_expiry ON uploads (expire_time);
