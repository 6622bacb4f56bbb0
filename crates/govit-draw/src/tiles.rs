//! The log as C2SP `tlog-tiles`: tiles of 256 consecutive hashes of one Merkle level, and
//! entry bundles. A tile at level `L` index `N` holds the nodes of tree level `8L` from
//! `N·256`; both are immutable once full, so any static web server can host them.
//!
//! Paths: `tile/<L>/<N>[.p/<W>]` and `tile/entries/<N>[.p/<W>]`, `N` in 3-digit groups with
//! every group but the last prefixed `x` (`x001/x234/067`).

use crate::merkle::nodes::NodeId;

/// Hashes (or entries) in a full tile.
pub const WIDTH: u64 = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TileKind {
    /// Hashes of tree level `8 × level`.
    Hashes {
        level: u8,
    },
    Entries,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tile {
    pub kind: TileKind,
    pub index: u64,
    /// 1..=256; below 256 a partial tile.
    pub width: u16,
}

fn index_path(mut n: u64) -> String {
    let mut groups = vec![format!("{:03}", n % 1000)];
    while n >= 1000 {
        n /= 1000;
        groups.push(format!("x{:03}", n % 1000));
    }
    groups.reverse();
    groups.join("/")
}

fn parse_index(groups: &[&str]) -> Option<u64> {
    let (last, rest) = groups.split_last()?;
    let mut n: u64 = 0;
    for group in rest {
        let digits = group.strip_prefix('x')?;
        n = n.checked_mul(1000)?.checked_add(three_digits(digits)?)?;
    }
    n.checked_mul(1000)?.checked_add(three_digits(last)?)
}

fn three_digits(text: &str) -> Option<u64> {
    (text.len() == 3 && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

impl Tile {
    pub fn path(&self) -> String {
        let kind = match self.kind {
            TileKind::Hashes { level } => level.to_string(),
            TileKind::Entries => "entries".to_owned(),
        };
        let partial = if u64::from(self.width) == WIDTH {
            String::new()
        } else {
            format!(".p/{}", self.width)
        };
        format!("tile/{kind}/{}{partial}", index_path(self.index))
    }

    /// Reads a path as [`Tile::path`] writes it; anything else is `None`.
    pub fn parse(path: &str) -> Option<Self> {
        let rest = path.strip_prefix("tile/")?;
        let (kind, rest) = rest.split_once('/')?;
        let kind = match kind {
            "entries" => TileKind::Entries,
            level => {
                let parsed: u8 = level.parse().ok()?;
                if parsed > 63 || parsed.to_string() != level {
                    return None;
                }
                TileKind::Hashes { level: parsed }
            }
        };
        let (index, width) = match rest.split_once(".p/") {
            Some((index, width)) => {
                let w: u16 = width.parse().ok()?;
                if !(1..WIDTH as u16).contains(&w) || w.to_string() != width {
                    return None;
                }
                (index, w)
            }
            None => (rest, WIDTH as u16),
        };
        let groups: Vec<&str> = index.split('/').collect();
        if groups.len() > 7 {
            return None;
        }
        Some(Self {
            kind,
            index: parse_index(&groups)?,
            width,
        })
    }

    /// The tree nodes a hash tile holds, in order.
    pub fn nodes(&self) -> Vec<NodeId> {
        let level = match self.kind {
            TileKind::Hashes { level } => level * 8,
            TileKind::Entries => 0,
        };
        (0..u64::from(self.width))
            .map(|i| NodeId {
                level,
                index: self.index * WIDTH + i,
            })
            .collect()
    }

    /// The entries an entry bundle holds.
    pub fn entries(&self) -> std::ops::Range<u64> {
        let start = self.index * WIDTH;
        start..start + u64::from(self.width)
    }

    /// Whether a tree of `size` entries has this tile: a full tile once its span is complete,
    /// a partial one only with exactly the width the size leaves at its level.
    pub fn exists_at(&self, size: u64) -> bool {
        let level = match self.kind {
            TileKind::Hashes { level } => u32::from(level),
            TileKind::Entries => 0,
        };
        // Tiles above level 7 would span more than 2^64 entries.
        let Some(unit) = WIDTH.checked_pow(level) else {
            return false;
        };
        let nodes = size / unit;
        let end = self.index.saturating_mul(WIDTH) + u64::from(self.width);
        if u64::from(self.width) == WIDTH {
            end <= nodes
        } else {
            end == nodes
        }
    }
}

/// Every tile and entry bundle of a tree of `size` entries (the partial ones for this size).
pub fn all_tiles(size: u64) -> Vec<Tile> {
    let mut tiles = Vec::new();
    let mut nodes = size;
    let mut level = 0u8;
    while nodes > 0 {
        let kinds: &[TileKind] = if level == 0 {
            &[TileKind::Hashes { level: 0 }, TileKind::Entries]
        } else {
            &[TileKind::Hashes { level }]
        };
        for &kind in kinds {
            for index in 0..nodes / WIDTH {
                tiles.push(Tile {
                    kind,
                    index,
                    width: WIDTH as u16,
                });
            }
            if !nodes.is_multiple_of(WIDTH) {
                tiles.push(Tile {
                    kind,
                    index: nodes / WIDTH,
                    width: (nodes % WIDTH) as u16,
                });
            }
        }
        nodes /= WIDTH;
        level += 1;
    }
    tiles
}

/// Entries as a bundle: each prefixed by its length as a big-endian u16.
pub fn entry_bundle<'a>(entries: impl IntoIterator<Item = &'a [u8]>) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for entry in entries {
        let len = u16::try_from(entry.len()).ok()?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(entry);
    }
    Some(out)
}

/// The entries of a bundle; `None` if it is truncated.
pub fn read_bundle(mut bytes: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut entries = Vec::new();
    while !bytes.is_empty() {
        let (len, rest) = bytes.split_at_checked(2)?;
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        let (entry, rest) = rest.split_at_checked(len)?;
        entries.push(entry.to_vec());
        bytes = rest;
    }
    Some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_spec_examples() {
        let tile = Tile {
            kind: TileKind::Hashes { level: 0 },
            index: 1_234_067,
            width: 256,
        };
        assert_eq!(tile.path(), "tile/0/x001/x234/067");
        assert_eq!(Tile::parse(&tile.path()), Some(tile));
        let partial = Tile {
            kind: TileKind::Entries,
            index: 5,
            width: 112,
        };
        assert_eq!(partial.path(), "tile/entries/005.p/112");
        assert_eq!(Tile::parse("tile/entries/005.p/112"), Some(partial));
        for bad in [
            "tile/00/000",
            "tile/0/1234",
            "tile/0/001/234",
            "tile/0/000.p/256",
            "tile/0/000.p/0",
            "tile/0/000.p/01",
            "tile/64/000",
            "tile/data/000",
            "tile/0/x1000/000",
        ] {
            assert_eq!(Tile::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_tree_of_70000_has_the_tiles_the_spec_lists() {
        let tiles = all_tiles(70_000);
        let hashes = |level: u8| {
            tiles
                .iter()
                .filter(move |t| t.kind == TileKind::Hashes { level })
                .collect::<Vec<_>>()
        };
        assert_eq!(hashes(0).len(), 274);
        assert_eq!(hashes(0).last().unwrap().width, 112);
        assert_eq!(hashes(1).len(), 2);
        assert_eq!(hashes(1)[1].width, 17);
        assert_eq!(hashes(2).len(), 1);
        assert_eq!(hashes(2)[0].width, 1);
        assert!(tiles.iter().all(|t| t.exists_at(70_000)));
        assert!(!hashes(0).last().unwrap().exists_at(70_001));
        let size_256 = all_tiles(256);
        assert!(size_256.contains(&Tile {
            kind: TileKind::Hashes { level: 1 },
            index: 0,
            width: 1
        }));
    }

    #[test]
    fn bundles_round_trip_and_truncation_is_caught() {
        let entries: [&[u8]; 3] = [b"{}", b"", b"abc"];
        let bundle = entry_bundle(entries).unwrap();
        assert_eq!(&bundle[..4], &[0, 2, b'{', b'}']);
        assert_eq!(read_bundle(&bundle).unwrap(), entries.map(<[u8]>::to_vec));
        assert_eq!(read_bundle(&bundle[..bundle.len() - 1]), None);
        assert_eq!(entry_bundle([vec![0u8; 70_000].as_slice()]), None);
    }
}
