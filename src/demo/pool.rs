//! The demo's expert pool: two categories and fourteen experts, created unless they exist.

use std::io::Write;

use anyhow::Context;
use govit_platform::{Role, resident_id, uscc};
use govit_proto::{experts::v1 as epb, google::r#type::Date};
use tonic::Code;

use super::Demo;

/// Creates the demo's categories and experts unless they exist.
pub(super) async fn seed_pool<W: Write>(d: &mut Demo<'_, W>) -> anyhow::Result<()> {
    let mut admin = d.registry(Role::RegistryAdmin)?;
    for (code, name) in [
        ("software", "Application software"),
        ("network", "Networks and security"),
    ] {
        let created = admin
            .create_category(epb::CreateCategoryRequest {
                request_id: String::new(),
                category: Some(epb::Category {
                    code: code.into(),
                    display_name: name.into(),
                    ..Default::default()
                }),
            })
            .await;
        created_or_present(created)?;
    }
    let mut created = 0;
    for i in 1..=14u32 {
        let result = admin
            .create_expert(epb::CreateExpertRequest {
                request_id: String::new(),
                expert: Some(demo_expert(i)?),
            })
            .await;
        if created_or_present(result)? {
            created += 1;
        }
    }
    d.say(format!("The registry admin keeps the pool: categories software and network, 14 experts ({created} new). ID numbers and phones stay masked for everyone else."))?;
    Ok(())
}

/// Whether the call created the thing; one that exists already is fine on a second run.
fn created_or_present<T>(result: Result<T, tonic::Status>) -> anyhow::Result<bool> {
    match result {
        Ok(_) => Ok(true),
        Err(s) if s.code() == Code::AlreadyExists => Ok(false),
        Err(s) => Err(s.into()),
    }
}

/// Expert `i` of the pool: nine in software, five in network, each from its own consultancy.
fn demo_expert(i: u32) -> anyhow::Result<epb::Expert> {
    let category = if i <= 9 { "software" } else { "network" };
    let id = format!("demo-e{i:02}");
    let employer =
        uscc::with_check_character(&format!("91650100MA78{i:05}")).context("credit code")?;
    let id_number =
        resident_id::with_check_character(&format!("65010219750101{i:03}")).context("id number")?;
    Ok(epb::Expert {
        expert_id: id.clone(),
        display_name: format!("Demo Expert {i}"),
        employer: Some(epb::Employer {
            credit_code: employer,
            name: format!("Consultancy {i}"),
        }),
        source: epb::ExpertSource::ItEnterprise as i32,
        title: "senior engineer".into(),
        categories: vec![category.into()],
        phone: format!("1390000{i:04}"),
        email: format!("{id}@experts.example"),
        id_number,
        appointment_start_date: Some(Date {
            year: 2025,
            month: 1,
            day: 1,
        }),
        appointment_end_date: Some(Date {
            year: 2029,
            month: 12,
            day: 31,
        }),
        ..Default::default()
    })
}
