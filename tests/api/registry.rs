//! The pool: categories and experts, personal data masked, every change in the log.

use govit_experts::DrawPolicy;
use govit_platform::Role;
use govit_proto::experts::v1::{self as epb};
use tonic::Code;

use crate::helpers::*;

#[tokio::test]
async fn experts_are_kept_with_personal_data_shown_only_to_registry_admins() {
    let r = spawn_registry(DrawPolicy::default()).await;
    r.category("software").await;
    let created = r.expert(expert("w-001", &["software"], 10)).await;
    assert_eq!(created.status, epb::ExpertStatus::Active as i32);
    let full_id = expert("w-001", &["software"], 10).id_number;
    assert_eq!(
        created.id_number, full_id,
        "the registry admin sees the ID number"
    );

    for role in [Role::Office, Role::Inspector, Role::Service] {
        let seen = r
            .client(role)
            .get_expert(epb::GetExpertRequest {
                name: "experts/w-001".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            seen.id_number,
            format!("{}********{}", &full_id[..6], &full_id[14..]),
            "{role}"
        );
        assert!(seen.phone.contains("****"), "{role}: {}", seen.phone);
    }
    for role in [Role::Applicant, Role::Expert, Role::Supervisor] {
        let status = r
            .client(role)
            .get_expert(epb::GetExpertRequest {
                name: "experts/w-001".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{role}");
    }
    for role in [
        Role::Office,
        Role::Inspector,
        Role::Service,
        Role::Applicant,
    ] {
        let status = r
            .client(role)
            .create_expert(epb::CreateExpertRequest {
                request_id: String::new(),
                expert: Some(expert("w-002", &["software"], 10)),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{role}");
    }

    // The log records the change, never the person.
    let entries = r
        .client(Role::Inspector)
        .list_log_entries(epb::ListLogEntriesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .entries;
    let created_entry = entries
        .iter()
        .find(|e| e.entry_json.contains("expert_created"))
        .expect("creation logged");
    assert!(created_entry.entry_json.contains("w-001"));
    let e = expert("w-001", &["software"], 10);
    for secret in [
        e.id_number.as_str(),
        e.phone.as_str(),
        e.display_name.as_str(),
        e.email.as_str(),
    ] {
        assert!(
            !entries.iter().any(|x| x.entry_json.contains(secret)),
            "{secret} leaked into the log"
        );
    }
}

#[tokio::test]
async fn status_changes_follow_their_rules_and_are_logged() {
    let r = spawn_registry(DrawPolicy::default()).await;
    r.category("software").await;
    let e = r.expert(expert("s-1", &["software"], 10)).await;
    let admin = r.client(Role::RegistryAdmin);
    let suspended = admin
        .clone()
        .suspend_expert(epb::SuspendExpertRequest {
            name: e.name.clone(),
            etag: e.etag.clone(),
            reason: "under investigation".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(suspended.status, epb::ExpertStatus::Suspended as i32);
    let again = admin
        .clone()
        .suspend_expert(epb::SuspendExpertRequest {
            name: e.name.clone(),
            etag: suspended.etag.clone(),
            reason: "x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
    let stale = admin
        .clone()
        .reinstate_expert(epb::ReinstateExpertRequest {
            name: e.name.clone(),
            etag: e.etag.clone(),
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted);
    let back = admin
        .clone()
        .reinstate_expert(epb::ReinstateExpertRequest {
            name: e.name.clone(),
            etag: suspended.etag,
            reason: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(back.status, epb::ExpertStatus::Active as i32);
    let retired = admin
        .clone()
        .retire_expert(epb::RetireExpertRequest {
            name: e.name.clone(),
            etag: back.etag,
            reason: "term ended".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(retired.status, epb::ExpertStatus::Retired as i32);
    let listed = admin
        .clone()
        .list_experts(epb::ListExpertsRequest {
            status: epb::ExpertStatus::Retired as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.experts.len(), 1);
    let entries = admin
        .clone()
        .list_log_entries(epb::ListLogEntriesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .entries;
    let statuses: Vec<&str> = entries
        .iter()
        .filter(|e| e.entry_json.contains("\"expert_updated\""))
        .map(|e| {
            if e.entry_json.contains("SUSPENDED") {
                "SUSPENDED"
            } else if e.entry_json.contains("RETIRED") {
                "RETIRED"
            } else {
                "ACTIVE"
            }
        })
        .collect();
    assert_eq!(statuses, ["SUSPENDED", "ACTIVE", "RETIRED"]);
}

#[tokio::test]
async fn a_bad_expert_is_refused_field_by_field_and_nothing_is_written() {
    let r = spawn_registry(DrawPolicy::default()).await;
    r.category("software").await;
    let admin = r.client(Role::RegistryAdmin);
    admin
        .clone()
        .update_category(epb::UpdateCategoryRequest {
            category: Some(epb::Category {
                name: "categories/software".into(),
                etag: "1".into(),
                active: false,
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["active".into()],
            }),
        })
        .await
        .unwrap();
    r.category("network").await;
    let before = (r.log_size().await, r.count("experts").await);
    let mut bad = expert("bad one", &["software", "network", "network", "ghost"], 10);
    let mut id = bad.id_number.clone();
    id.replace_range(17.., if id.ends_with('0') { "1" } else { "0" });
    bad.id_number = id;
    bad.phone = "none".into();
    bad.appointment_end_date = date(2024, 1, 1);
    let status = admin
        .clone()
        .create_expert(epb::CreateExpertRequest {
            request_id: String::new(),
            expert: Some(bad),
        })
        .await
        .unwrap_err();
    let fields = violated_fields(&status);
    for f in [
        "expert.expert_id",
        "expert.categories[2]",
        "expert.categories[0]",
        "expert.categories[3]",
        "expert.phone",
        "expert.id_number",
        "expert.appointment_end_date",
    ] {
        assert!(fields.contains(&f.to_string()), "{f} not in {fields:?}");
    }
    // The message names the first few problems; the details hold every one.
    let descriptions = govit_platform::error::field_violations(&status)
        .into_iter()
        .map(|v| v.description)
        .collect::<Vec<_>>()
        .join("; ");
    for problem in [
        "category software is inactive",
        "no category ghost",
        "check character",
    ] {
        assert!(
            descriptions.contains(problem),
            "{problem} not in {descriptions}"
        );
    }
    assert!(
        !status
            .message()
            .contains(&expert("bad one", &[], 10).id_number[..14]),
        "the message must not echo the ID number"
    );
    assert!(
        !descriptions.contains(&expert("bad one", &[], 10).id_number[..14]),
        "nor may the details"
    );
    assert_eq!((r.log_size().await, r.count("experts").await), before);
}

#[tokio::test]
async fn categories_form_a_tree_without_cycles() {
    let r = spawn_registry(DrawPolicy::default()).await;
    r.category("it").await;
    let admin = r.client(Role::RegistryAdmin);
    let child = admin
        .clone()
        .create_category(epb::CreateCategoryRequest {
            request_id: String::new(),
            category: Some(epb::Category {
                code: "it.network".into(),
                display_name: "Networks".into(),
                parent: "categories/it".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(child.parent, "categories/it");
    assert!(child.active, "a new category is active");
    let cycle = admin
        .clone()
        .update_category(epb::UpdateCategoryRequest {
            category: Some(epb::Category {
                name: "categories/it".into(),
                etag: "1".into(),
                parent: "categories/it.network".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["parent".into()],
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&cycle), ["category.parent"]);
    let dup = admin
        .clone()
        .create_category(epb::CreateCategoryRequest {
            request_id: String::new(),
            category: Some(epb::Category {
                code: "it".into(),
                display_name: "x".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(dup.code(), Code::AlreadyExists);
    // Every role may read the taxonomy.
    let listed = r
        .client(Role::Applicant)
        .list_categories(epb::ListCategoriesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.categories.len(), 2);
}

#[tokio::test]
async fn an_update_applies_at_its_etag_and_is_refused_with_an_old_one() {
    let r = spawn_registry(DrawPolicy::default()).await;
    r.category("software").await;
    let e = r.expert(expert("u-1", &["software"], 10)).await;
    let admin = r.client(Role::RegistryAdmin);
    let update = |etag: String, title: &str| epb::UpdateExpertRequest {
        expert: Some(epb::Expert {
            name: e.name.clone(),
            etag,
            title: title.into(),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["title".into()],
        }),
    };
    let updated = admin
        .clone()
        .update_expert(update(e.etag.clone(), "Chief engineer"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.title, "Chief engineer");
    assert_ne!(updated.etag, e.etag);
    let stale = admin
        .clone()
        .update_expert(update(e.etag.clone(), "Engineer"))
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted);
    let read = admin
        .clone()
        .get_expert(epb::GetExpertRequest {
            name: e.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(read.title, "Chief engineer");
    assert_eq!(read.etag, updated.etag);
}
