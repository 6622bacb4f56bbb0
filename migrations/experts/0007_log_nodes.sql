-- The complete subtrees of the log's RFC 6962 Merkle tree, kept as entries are appended, so a
-- head or proof reads O(log n) hashes instead of rehashing every leaf. Node (level, idx) is the
-- root over entries idx·2^level .. (idx+1)·2^level; level 0 is the leaf hash. Filled for an
-- existing log when the registry starts (translog::complete_nodes), then by every append.
CREATE TABLE log_nodes (
    level BIGINT NOT NULL,
    idx   BIGINT NOT NULL,
    hash  TEXT NOT NULL,
    PRIMARY KEY (level, idx)
);
