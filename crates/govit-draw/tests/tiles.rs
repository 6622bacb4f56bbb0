//! Tiles served from stored nodes, read by an independent tiled-log client: tlog_tiles (a port
//! of Go's sumdb tlog) fetches the tiles it needs, authenticates them against the root, and
//! builds proofs from them. A wrong hash anywhere in a tile makes it refuse.

use std::collections::HashMap;

use govit_draw::{
    merkle::{
        self, Hash,
        nodes::{self, NodeId},
    },
    tiles::{self, Tile, TileKind},
};
use tlog_tiles::{HashReader, TileHashReader, TileReader};

struct Log {
    nodes: HashMap<NodeId, Hash>,
}

impl Log {
    fn with_entries(count: u64) -> (Self, Vec<Hash>) {
        let mut nodes = HashMap::new();
        let mut leaves = Vec::new();
        for i in 0..count {
            let leaf = merkle::leaf_hash(format!("entry {i}").as_bytes());
            leaves.push(leaf);
            let made = nodes::append(i, leaf, &|id| nodes.get(&id).copied()).unwrap();
            nodes.extend(made);
        }
        (Self { nodes }, leaves)
    }

    fn tile_bytes(&self, tile: &Tile) -> Vec<u8> {
        tile.nodes().iter().flat_map(|id| self.nodes[id]).collect()
    }
}

/// Go's layout names tiles `tile/8/<L>/<N>`; the C2SP one drops the height.
impl TileReader for Log {
    fn height(&self) -> u8 {
        8
    }

    fn read_tiles(&self, wanted: &[tlog_tiles::Tile]) -> Result<Vec<Vec<u8>>, tlog_tiles::Error> {
        Ok(wanted
            .iter()
            .map(|t| {
                let c2sp = t.path().replacen("tile/8/", "tile/", 1);
                let tile = Tile::parse(&c2sp).expect("tlog_tiles asks for C2SP-shaped tiles");
                assert_eq!(tile.kind, TileKind::Hashes { level: t.level() });
                self.tile_bytes(&tile)
            })
            .collect())
    }

    fn save_tiles(&self, _: &[tlog_tiles::Tile], _: &[Vec<u8>]) {}
}

#[test]
fn tlog_tiles_authenticates_our_tiles_and_proves_from_them() {
    for size in [1u64, 255, 256, 257, 65_535, 65_536, 70_000] {
        let (log, leaves) = Log::with_entries(size);
        let root = merkle::nodes::root(size, &|id| log.nodes.get(&id).copied()).unwrap();
        let reader = TileHashReader::new(size, tlog_tiles::Hash(root), &log);
        assert_eq!(tlog_tiles::tree_hash(size, &reader).unwrap().0, root);
        for index in [0, size / 3, size - 1] {
            let proof = tlog_tiles::prove_record(size, index, &reader).unwrap();
            tlog_tiles::check_record(
                &proof,
                size,
                tlog_tiles::Hash(root),
                index,
                tlog_tiles::Hash(leaves[index as usize]),
            )
            .unwrap();
        }
        // Every tile the tree has exists at this size, and its hashes are the stored nodes.
        for tile in tiles::all_tiles(size) {
            assert!(tile.exists_at(size), "{}", tile.path());
        }
        let hashes = reader
            .read_hashes(&[tlog_tiles::stored_hash_index(0, size - 1)])
            .unwrap();
        assert_eq!(hashes[0].0, leaves[size as usize - 1]);
    }
}

#[test]
fn a_proof_from_a_tile_with_one_wrong_hash_is_refused() {
    let size = 600;
    let (mut log, _) = Log::with_entries(size);
    let root = merkle::nodes::root(size, &|id| log.nodes.get(&id).copied()).unwrap();
    log.nodes.insert(
        NodeId {
            level: 0,
            index: 301,
        },
        [0; 32],
    );
    let reader = TileHashReader::new(size, tlog_tiles::Hash(root), &log);
    let leaf = merkle::leaf_hash(b"entry 300");
    let refused = tlog_tiles::prove_record(size, 300, &reader).and_then(|proof| {
        tlog_tiles::check_record(
            &proof,
            size,
            tlog_tiles::Hash(root),
            300,
            tlog_tiles::Hash(leaf),
        )
    });
    assert!(refused.is_err());
}
