//! The same tree, computed from stored complete subtrees instead of from every leaf, so that
//! the head and any proof cost O(log n) stored hashes whatever the log's size.
//!
//! A node is the root of a complete subtree: [`NodeId`] `{ level, index }` covers leaves
//! `index·2^level .. (index+1)·2^level`. Appending leaf `i` completes the nodes
//! [`completed_by`] lists; a store keeps them (the C2SP tlog-tiles layout is these same hashes
//! grouped by eight levels). Every other hash a head or proof needs is a right-edge range whose
//! MTH folds the complete subtrees it decomposes into.
//!
//! The functions take a [`NodeSource`]. What they will read depends only on sizes and indices,
//! never on hash values, so a store can first ask [`needed`] which nodes to fetch in one
//! query, then compute from what it fetched.

use std::{cell::RefCell, collections::BTreeSet};

use super::{Hash, node_hash};
use sha2::{Digest, Sha256};

/// The root of the complete subtree of `2^level` leaves starting at leaf `index << level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    pub level: u8,
    pub index: u64,
}

/// Where stored node hashes come from.
pub trait NodeSource {
    /// The hash of a complete node; `None` if the store does not have it.
    fn node(&self, id: NodeId) -> Option<Hash>;
}

impl<F: Fn(NodeId) -> Option<Hash>> NodeSource for F {
    fn node(&self, id: NodeId) -> Option<Hash> {
        self(id)
    }
}

/// A node the computation needed and the store lacked: the store is incomplete or corrupt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the stored tree has no node at level {} index {}", .0.level, .0.index)]
pub struct MissingNode(pub NodeId);

fn get(source: &impl NodeSource, id: NodeId) -> Result<Hash, MissingNode> {
    source.node(id).ok_or(MissingNode(id))
}

/// The nodes that appending leaf `index` completes, bottom-up: the leaf itself, then each
/// ancestor whose right edge it is.
pub fn completed_by(index: u64) -> impl Iterator<Item = NodeId> {
    let levels = (index + 1).trailing_zeros() as u8;
    (0..=levels).map(move |level| NodeId {
        level,
        index: index >> level,
    })
}

/// The hashes of the nodes appending leaf `index` (hash `leaf`) completes, bottom-up. Each
/// level above the leaf combines the left sibling, read from `source`, with what was just made.
pub fn append(
    index: u64,
    leaf: Hash,
    source: &impl NodeSource,
) -> Result<Vec<(NodeId, Hash)>, MissingNode> {
    let mut made = Vec::new();
    let mut hash = leaf;
    for id in completed_by(index) {
        if id.level > 0 {
            let left = get(
                source,
                NodeId {
                    level: id.level - 1,
                    index: id.index * 2,
                },
            )?;
            hash = node_hash(&left, &hash);
        }
        made.push((id, hash));
    }
    Ok(made)
}

/// The hashes of the nodes appending `leaves` at `first`, `first + 1`, … completes, in append
/// order. Left siblings made within the batch come from the batch; only those completed before
/// `first` (at most one per level) are read from `source`, so [`needed`] names them all.
pub fn append_many(
    first: u64,
    leaves: &[Hash],
    source: &impl NodeSource,
) -> Result<Vec<(NodeId, Hash)>, MissingNode> {
    let mut made: Vec<(NodeId, Hash)> = Vec::with_capacity(leaves.len() * 2);
    // Nodes of this batch that may still be a left sibling: one per level at most, as in a
    // running frontier.
    let mut frontier: std::collections::HashMap<NodeId, Hash> = std::collections::HashMap::new();
    for (offset, leaf) in leaves.iter().enumerate() {
        let index = first + offset as u64;
        let lookup = |id: NodeId| frontier.get(&id).copied().or_else(|| source.node(id));
        let new = append(index, *leaf, &lookup)?;
        for &(id, hash) in &new {
            // A node is a left sibling exactly when its index is even.
            if id.index % 2 == 0 {
                frontier.insert(id, hash);
            }
            if id.level > 0 {
                frontier.remove(&NodeId {
                    level: id.level - 1,
                    index: id.index * 2,
                });
            }
        }
        made.extend(new);
    }
    Ok(made)
}

/// MTH(D[start:end]) where `start` is a multiple of the largest power of two not above
/// `end - start` (every range RFC 6962's recursion produces is): the complete subtrees of the
/// range, largest first, folded from the right.
fn range_hash(start: u64, end: u64, source: &impl NodeSource) -> Result<Hash, MissingNode> {
    let mut blocks = Vec::new();
    let mut at = start;
    while at < end {
        let level = 63 - (end - at).leading_zeros() as u8;
        blocks.push(NodeId {
            level,
            index: at >> level,
        });
        at += 1 << level;
    }
    let mut hashes = blocks.into_iter().rev().map(|id| get(source, id));
    let mut acc = hashes.next().transpose()?.ok_or(MissingNode(NodeId {
        level: 0,
        index: start,
    }))?;
    for left in hashes {
        acc = node_hash(&left?, &acc);
    }
    Ok(acc)
}

/// The largest power of two smaller than n (n ≥ 2).
fn split(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

/// The root of the first `size` leaves.
pub fn root(size: u64, source: &impl NodeSource) -> Result<Hash, MissingNode> {
    if size == 0 {
        return Ok(Sha256::digest([]).into());
    }
    range_hash(0, size, source)
}

/// PATH(index, D[size]), as [`super::inclusion_proof`] computes it from every leaf.
pub fn inclusion_proof(
    index: u64,
    size: u64,
    source: &impl NodeSource,
) -> Result<Vec<Hash>, MissingNode> {
    let mut path = Vec::new();
    if index < size {
        path_into(index, 0, size, source, &mut path)?;
    }
    Ok(path)
}

fn path_into(
    index: u64,
    start: u64,
    end: u64,
    source: &impl NodeSource,
    path: &mut Vec<Hash>,
) -> Result<(), MissingNode> {
    let n = end - start;
    if n <= 1 {
        return Ok(());
    }
    let k = split(n);
    if index < k {
        path_into(index, start, start + k, source, path)?;
        path.push(range_hash(start + k, end, source)?);
    } else {
        path_into(index - k, start + k, end, source, path)?;
        path.push(range_hash(start, start + k, source)?);
    }
    Ok(())
}

/// PROOF(old_size, D[new_size]), as [`super::consistency_proof`] computes it.
pub fn consistency_proof(
    old_size: u64,
    new_size: u64,
    source: &impl NodeSource,
) -> Result<Vec<Hash>, MissingNode> {
    let mut proof = Vec::new();
    if old_size > 0 && old_size < new_size {
        subproof_into(old_size, 0, new_size, true, source, &mut proof)?;
    }
    Ok(proof)
}

fn subproof_into(
    m: u64,
    start: u64,
    end: u64,
    complete: bool,
    source: &impl NodeSource,
    proof: &mut Vec<Hash>,
) -> Result<(), MissingNode> {
    let n = end - start;
    if m == n {
        if !complete {
            proof.push(range_hash(start, end, source)?);
        }
        return Ok(());
    }
    let k = split(n);
    if m <= k {
        subproof_into(m, start, start + k, complete, source, proof)?;
        proof.push(range_hash(start + k, end, source)?);
    } else {
        subproof_into(m - k, start + k, end, false, source, proof)?;
        proof.push(range_hash(start, start + k, source)?);
    }
    Ok(())
}

/// The nodes `compute` reads, found by running it against a source that records what it is
/// asked and answers zeros (what is read depends only on sizes and indices).
pub fn needed<T>(
    compute: impl FnOnce(&dyn Fn(NodeId) -> Option<Hash>) -> Result<T, MissingNode>,
) -> BTreeSet<NodeId> {
    let asked = RefCell::new(BTreeSet::new());
    let record = |id: NodeId| {
        asked.borrow_mut().insert(id);
        Some([0u8; 32])
    };
    // Zeros never go missing, so the computation always completes.
    let _ = compute(&record);
    asked.into_inner()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::merkle;

    fn stored(leaves: &[Hash]) -> HashMap<NodeId, Hash> {
        let mut nodes = HashMap::new();
        for (i, leaf) in leaves.iter().enumerate() {
            let lookup = |id: NodeId| nodes.get(&id).copied();
            let made = append(i as u64, *leaf, &lookup).unwrap();
            nodes.extend(made);
        }
        nodes
    }

    #[test]
    fn a_batch_makes_the_nodes_its_appends_one_by_one_make() {
        let leaves: Vec<Hash> = (0..300u32)
            .map(|i| merkle::leaf_hash(&i.to_be_bytes()))
            .collect();
        let one_by_one = stored(&leaves);
        for split in [0usize, 1, 5, 64, 127, 128, 299] {
            let mut nodes = stored(&leaves[..split]);
            let wanted = needed(|s| append_many(split as u64, &leaves[split..], &s));
            // Only nodes completed before the batch are read, at most one per level.
            assert!(
                wanted
                    .iter()
                    .all(|id| (id.index + 1) << id.level <= split as u64)
            );
            assert!(wanted.len() <= 9, "{split}: {wanted:?}");
            let lookup = |id: NodeId| nodes.get(&id).copied();
            let made = append_many(split as u64, &leaves[split..], &lookup).unwrap();
            nodes.extend(made);
            assert_eq!(nodes, one_by_one, "batch from {split}");
        }
    }

    #[test]
    fn heads_and_proofs_from_stored_nodes_equal_those_from_every_leaf() {
        let leaves: Vec<Hash> = (0..67u32)
            .map(|i| merkle::leaf_hash(&i.to_be_bytes()))
            .collect();
        let nodes = stored(&leaves);
        let source = |id: NodeId| nodes.get(&id).copied();
        for size in 0..=leaves.len() {
            let prefix = &leaves[..size];
            let n = size as u64;
            assert_eq!(
                root(n, &source).unwrap(),
                merkle::root(prefix),
                "root {size}"
            );
            for index in 0..size {
                assert_eq!(
                    inclusion_proof(index as u64, n, &source).unwrap(),
                    merkle::inclusion_proof(index, prefix),
                    "inclusion {index}/{size}"
                );
            }
            for old in 0..=size {
                assert_eq!(
                    consistency_proof(old as u64, n, &source).unwrap(),
                    merkle::consistency_proof(old, prefix),
                    "consistency {old}/{size}"
                );
            }
        }
    }

    #[test]
    fn an_append_stores_about_two_nodes_and_a_proof_reads_logarithmically_many() {
        assert_eq!(completed_by(0).count(), 1);
        assert_eq!(
            completed_by(7).collect::<Vec<_>>().last(),
            Some(&NodeId { level: 3, index: 0 })
        );
        let size = 1_000_000u64;
        let read = needed(|s| inclusion_proof(123_456, size, &s));
        assert!(read.len() <= 2 * 20, "{} nodes read", read.len());
        for old in [1, 3, 1000, 524_287, 524_289, 999_999] {
            let read = needed(|s| consistency_proof(old, size, &s));
            assert!(read.len() <= 2 * 20, "{} nodes read from {old}", read.len());
        }
        let read = needed(|s| root(size, &s));
        assert_eq!(read.len(), size.count_ones() as usize);
    }

    #[test]
    fn a_missing_node_is_an_error_not_a_wrong_hash() {
        let leaves: Vec<Hash> = (0..5u32)
            .map(|i| merkle::leaf_hash(&i.to_be_bytes()))
            .collect();
        let mut nodes = stored(&leaves);
        nodes.remove(&NodeId { level: 2, index: 0 });
        let source = |id: NodeId| nodes.get(&id).copied();
        assert_eq!(
            root(5, &source),
            Err(MissingNode(NodeId { level: 2, index: 0 }))
        );
    }
}
