//! Who may be drawn for a meeting, and why not: the reason codes of draw-v1's `exclusions`.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use govit_platform::time::date_from_stored;
use govit_proto::{StoredEnum, experts::v1::ExpertStatus};

use crate::model::{ConflictRec, PeriodRec, PoolMember, from_json};

govit_proto::stored_enum! {
    /// Why an expert may not be drawn, by the reason code draw-v1 records in the input.
    pub enum Ineligible("exclusion reason") {
        Inactive = "INACTIVE",
        AppointmentExpired = "APPOINTMENT_EXPIRED",
        Unavailable = "UNAVAILABLE",
        EmployerConflict = "EMPLOYER_CONFLICT",
        DeclaredConflict = "DECLARED_CONFLICT",
        Manual = "MANUAL",
        AlreadyDrawn = "ALREADY_DRAWN",
        WorkloadLimit = "WORKLOAD_LIMIT",
    }
}

/// What a draw's request and the deployment's policy say about eligibility.
pub struct Rules<'a> {
    pub meeting_date: NaiveDate,
    pub excluded_organizations: &'a BTreeSet<String>,
    pub manual: &'a BTreeSet<String>,
    pub already_drawn: &'a BTreeSet<String>,
    /// Selections per expert in the workload window, and the most allowed; None when the rule
    /// is off.
    pub workload: Option<(&'a BTreeMap<String, i64>, i64)>,
}

/// The reasons that exclude `expert`, sorted by code as draw-v1 wants them; empty when
/// eligible.
pub fn exclusion_reasons(
    expert: &PoolMember,
    rules: &Rules<'_>,
) -> anyhow::Result<Vec<Ineligible>> {
    let mut reasons = Vec::new();
    if expert.status != ExpertStatus::Active {
        reasons.push(Ineligible::Inactive);
    }
    let start = date_from_stored(&expert.appointment_start)?;
    let end = date_from_stored(&expert.appointment_end)?;
    if rules.meeting_date < start || rules.meeting_date > end {
        reasons.push(Ineligible::AppointmentExpired);
    }
    let periods: Vec<PeriodRec> = from_json("unavailable", &expert.unavailable)?;
    let meeting = rules.meeting_date.to_string();
    if periods
        .iter()
        .any(|p| p.start.as_str() <= meeting.as_str() && meeting.as_str() <= p.end.as_str())
    {
        reasons.push(Ineligible::Unavailable);
    }
    if rules
        .excluded_organizations
        .contains(&expert.employer_credit_code)
    {
        reasons.push(Ineligible::EmployerConflict);
    }
    let conflicts: Vec<ConflictRec> = from_json("conflicts", &expert.conflicts)?;
    if conflicts
        .iter()
        .any(|c| rules.excluded_organizations.contains(&c.credit_code))
    {
        reasons.push(Ineligible::DeclaredConflict);
    }
    if rules.manual.contains(&expert.id) {
        reasons.push(Ineligible::Manual);
    }
    if rules.already_drawn.contains(&expert.id) {
        reasons.push(Ineligible::AlreadyDrawn);
    }
    if let Some((counts, max)) = rules.workload
        && counts.get(&expert.id).copied().unwrap_or(0) >= max
    {
        reasons.push(Ineligible::WorkloadLimit);
    }
    reasons.sort_unstable_by_key(|r| r.as_stored());
    Ok(reasons)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expert() -> PoolMember {
        PoolMember {
            category: "software".into(),
            id: "e1".into(),
            employer_credit_code: "EMP".into(),
            appointment_start: "2026-01-01".into(),
            appointment_end: "2028-12-31".into(),
            status: ExpertStatus::Active,
            unavailable: r#"[{"start":"2026-12-01","end":"2026-12-05","reason":"travel"}]"#.into(),
            conflicts: r#"[{"credit_code":"CONF","reason":"former employer"}]"#.into(),
        }
    }

    fn reasons(
        e: &PoolMember,
        date: &str,
        orgs: &[&str],
        workload: Option<i64>,
    ) -> Vec<&'static str> {
        let orgs: BTreeSet<String> = orgs.iter().map(|s| s.to_string()).collect();
        let none = BTreeSet::new();
        let counts = BTreeMap::from([("e1".to_string(), 2)]);
        let rules = Rules {
            meeting_date: date.parse().unwrap(),
            excluded_organizations: &orgs,
            manual: &none,
            already_drawn: &none,
            workload: workload.map(|max| (&counts, max)),
        };
        exclusion_reasons(e, &rules)
            .unwrap()
            .into_iter()
            .map(StoredEnum::as_stored)
            .collect()
    }

    #[test]
    fn an_active_expert_in_term_is_eligible() {
        assert!(reasons(&expert(), "2026-11-30", &[], None).is_empty());
    }

    #[test]
    fn each_rule_gives_its_code_and_codes_come_sorted() {
        assert_eq!(reasons(&expert(), "2026-12-03", &[], None), ["UNAVAILABLE"]);
        assert_eq!(
            reasons(&expert(), "2029-01-01", &[], None),
            ["APPOINTMENT_EXPIRED"]
        );
        assert_eq!(
            reasons(&expert(), "2026-11-30", &["EMP", "CONF"], None),
            ["DECLARED_CONFLICT", "EMPLOYER_CONFLICT"]
        );
        assert_eq!(
            reasons(&expert(), "2026-11-30", &[], Some(2)),
            ["WORKLOAD_LIMIT"]
        );
        assert!(reasons(&expert(), "2026-11-30", &[], Some(3)).is_empty());
        let mut suspended = expert();
        suspended.status = ExpertStatus::Suspended;
        assert_eq!(
            reasons(&suspended, "2026-12-05", &[], None),
            ["INACTIVE", "UNAVAILABLE"]
        );
    }
}
