//! The transparency log: signed heads, inclusion and consistency proofs, and one linear log
//! even with two registry replicas drawing at once.

use govit_draw::merkle::{self, TreeHead};
use govit_experts::DrawPolicy;
use govit_platform::Role;
use govit_proto::experts::v1::{self as epb};
use serde_json::Value;

use crate::helpers::*;

fn hash(hex_text: &str) -> merkle::Hash {
    hex::decode(hex_text).unwrap().try_into().unwrap()
}

async fn head(client: &RegistryClient) -> TreeHead {
    let h = client
        .clone()
        .get_log_head(epb::GetLogHeadRequest {})
        .await
        .unwrap()
        .into_inner();
    TreeHead {
        tree_size: h.tree_size,
        root_hash: h.root_hash,
        timestamp: h.timestamp,
        signature: h.signature,
        public_key: h.public_key,
    }
}

async fn setup(r: &Registry) {
    r.category("software").await;
    for i in 1..=12 {
        r.expert(expert(&format!("e{i:02}"), &["software"], 100 + i))
            .await;
    }
}

async fn draw(client: &RegistryClient, project: &str) -> epb::Draw {
    let d = client
        .clone()
        .open_draw(open_request(project, vec![requirement("software", 3, 1)]))
        .await
        .unwrap()
        .into_inner();
    client
        .clone()
        .execute_draw(epb::ExecuteDrawRequest { name: d.name })
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn a_draw_is_provably_in_a_signed_log_that_only_grows() {
    let r = spawn_registry(DrawPolicy {
        require_witness: false,
        ..DrawPolicy::default()
    })
    .await;
    setup(&r).await;
    let inspector = r.client(Role::Inspector);
    let old = head(&inspector).await;
    let public = r.service.public_key_hex();
    old.verify(&public).unwrap();
    assert_eq!(old.public_key, public);

    let d = draw(&r.client(Role::Office), "2026-0003").await;
    let new = head(&inspector).await;
    new.verify(&public).unwrap();
    assert!(new.tree_size > old.tree_size);

    // The executed entry carries the record's hash, and is in the tree the head signs.
    let entries = inspector
        .clone()
        .list_log_entries(epb::ListLogEntriesRequest {
            draw_id: d.draw_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    let executed = entries
        .iter()
        .find(|e| e.entry_json.contains("draw_executed"))
        .unwrap();
    let entry: Value = serde_json::from_str(&executed.entry_json).unwrap();
    assert_eq!(entry["record_hash"], d.record_hash);
    assert_eq!(
        hex::encode(merkle::leaf_hash(executed.entry_json.as_bytes())),
        executed.leaf_hash
    );
    let proof = inspector
        .clone()
        .get_inclusion_proof(epb::GetInclusionProofRequest {
            index: executed.index,
            tree_size: new.tree_size,
        })
        .await
        .unwrap()
        .into_inner();
    let path: Vec<merkle::Hash> = proof.hashes.iter().map(|h| hash(h)).collect();
    assert!(merkle::verify_inclusion(
        executed.index,
        new.tree_size,
        &hash(&executed.leaf_hash),
        &path,
        &new.root().unwrap()
    ));
    assert!(!merkle::verify_inclusion(
        executed.index,
        new.tree_size,
        &merkle::leaf_hash(b"forged"),
        &path,
        &new.root().unwrap()
    ));

    let consistency = inspector
        .clone()
        .get_consistency_proof(epb::GetConsistencyProofRequest {
            old_size: old.tree_size,
            new_size: new.tree_size,
        })
        .await
        .unwrap()
        .into_inner();
    let path: Vec<merkle::Hash> = consistency.hashes.iter().map(|h| hash(h)).collect();
    assert!(merkle::verify_consistency(
        old.tree_size,
        new.tree_size,
        &old.root().unwrap(),
        &new.root().unwrap(),
        &path
    ));

    let bad = inspector
        .clone()
        .get_inclusion_proof(epb::GetInclusionProofRequest {
            index: 5,
            tree_size: new.tree_size + 1,
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&bad), ["tree_size"]);
}

#[tokio::test]
async fn two_replicas_drawing_at_once_keep_one_linear_consistent_log() {
    let a = spawn_registry(DrawPolicy {
        require_witness: false,
        ..DrawPolicy::default()
    })
    .await;
    setup(&a).await;
    let b = spawn_registry_on(
        &a.database_url,
        DrawPolicy {
            require_witness: false,
            ..DrawPolicy::default()
        },
    )
    .await;
    assert_eq!(
        a.service.public_key_hex(),
        b.service.public_key_hex(),
        "replicas share the signing key"
    );
    let start = head(&a.client(Role::Inspector)).await;

    let mut tasks = Vec::new();
    for i in 0..8 {
        let client = if i % 2 == 0 {
            a.client(Role::Office)
        } else {
            b.client(Role::Office)
        };
        tasks.push(tokio::spawn(async move {
            draw(&client, &format!("2026-{:04}", 100 + i)).await
        }));
    }
    let mut draws = Vec::new();
    for t in tasks {
        draws.push(t.await.unwrap());
    }

    let head_a = head(&a.client(Role::Inspector)).await;
    let head_b = head(&b.client(Role::Inspector)).await;
    assert_eq!(
        head_a.tree_size,
        start.tree_size + 16,
        "an open and an execute entry per draw"
    );
    assert_eq!(
        (head_a.tree_size, &head_a.root_hash),
        (head_b.tree_size, &head_b.root_hash)
    );
    let entries = a
        .client(Role::Inspector)
        .list_log_entries(epb::ListLogEntriesRequest {
            start: 0,
            limit: 1000,
            draw_id: String::new(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(
        entries.iter().map(|e| e.index).collect::<Vec<_>>(),
        (0..head_a.tree_size).collect::<Vec<_>>()
    );
    let leaves: Vec<merkle::Hash> = entries
        .iter()
        .map(|e| merkle::leaf_hash(e.entry_json.as_bytes()))
        .collect();
    assert_eq!(hex::encode(merkle::root(&leaves)), head_a.root_hash);
    for d in &draws {
        let mine: Vec<Value> = entries
            .iter()
            .map(|e| serde_json::from_str::<Value>(&e.entry_json).unwrap())
            .filter(|v| v["draw_id"] == d.draw_id.as_str())
            .collect();
        assert_eq!(
            mine.iter()
                .map(|v| v["type"].as_str().unwrap())
                .collect::<Vec<_>>(),
            ["draw_opened", "draw_executed"]
        );
    }
    let proof = b
        .client(Role::Inspector)
        .get_consistency_proof(epb::GetConsistencyProofRequest {
            old_size: start.tree_size,
            new_size: head_a.tree_size,
        })
        .await
        .unwrap()
        .into_inner();
    let path: Vec<merkle::Hash> = proof.hashes.iter().map(|h| hash(h)).collect();
    assert!(merkle::verify_consistency(
        start.tree_size,
        head_a.tree_size,
        &start.root().unwrap(),
        &head_a.root().unwrap(),
        &path
    ));
}

async fn all_leaves(client: &RegistryClient) -> Vec<merkle::Hash> {
    let entries = client
        .clone()
        .list_log_entries(epb::ListLogEntriesRequest {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    entries
        .iter()
        .map(|e| merkle::leaf_hash(e.entry_json.as_bytes()))
        .collect()
}

/// Heads and proofs come from stored subtrees; they must equal what an inspector computes from
/// the entries, including for a log written before the subtrees were kept, whose nodes the
/// registry fills in when it starts.
#[tokio::test]
async fn heads_and_proofs_from_stored_subtrees_match_the_entries_even_after_an_upgrade() {
    let policy = DrawPolicy {
        require_witness: false,
        ..DrawPolicy::default()
    };
    let r = spawn_registry(policy.clone()).await;
    setup(&r).await;
    for i in 0..3 {
        draw(&r.client(Role::Office), &format!("2026-{:04}", 300 + i)).await;
    }
    let inspector = r.client(Role::Inspector);
    let before = head(&inspector).await;
    let leaves = all_leaves(&inspector).await;
    assert_eq!(leaves.len() as u64, before.tree_size);
    assert_eq!(before.root().unwrap(), merkle::root(&leaves));

    // As a log written before migration 0007 would be: entries without their subtrees.
    sqlx::query("DELETE FROM log_nodes")
        .execute(&r.service.db().pool)
        .await
        .unwrap();
    let upgraded = spawn_registry_on(&r.database_url, policy).await;
    let inspector = upgraded.client(Role::Inspector);
    let after = head(&inspector).await;
    assert_eq!(
        (after.tree_size, after.root().unwrap()),
        (before.tree_size, merkle::root(&leaves))
    );
    for index in [0, 5, leaves.len() as u64 - 1] {
        let proof = inspector
            .clone()
            .get_inclusion_proof(epb::GetInclusionProofRequest {
                index,
                tree_size: after.tree_size,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(proof.leaf_hash, hex::encode(leaves[index as usize]));
        let path: Vec<merkle::Hash> = proof.hashes.iter().map(|h| hash(h)).collect();
        assert_eq!(
            path,
            merkle::inclusion_proof(index as usize, &leaves),
            "inclusion of {index}"
        );
    }
    // And appending goes on from the completed nodes.
    draw(&upgraded.client(Role::Office), "2026-0310").await;
    let grown = head(&inspector).await;
    let leaves = all_leaves(&inspector).await;
    assert_eq!(grown.root().unwrap(), merkle::root(&leaves));
    let consistency = inspector
        .clone()
        .get_consistency_proof(epb::GetConsistencyProofRequest {
            old_size: before.tree_size,
            new_size: grown.tree_size,
        })
        .await
        .unwrap()
        .into_inner();
    let path: Vec<merkle::Hash> = consistency.hashes.iter().map(|h| hash(h)).collect();
    assert_eq!(
        path,
        merkle::consistency_proof(before.tree_size as usize, &leaves)
    );
}
