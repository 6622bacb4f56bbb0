//! Field rules for categories and experts, shared by the RPCs and the roster import.

use govit_platform::{
    ServiceError, ServiceResult, Violations, resident_id,
    time::date_from_proto,
    uscc::CreditCode,
    validate::{is_code, is_email, is_phone, optional_text_problem, text_problem},
};
use govit_proto::experts::v1 as pb;

use crate::model::{ConflictRec, PeriodRec};

pub fn text(v: &mut Violations, field: &str, value: &str, max: usize) {
    if let Some(p) = text_problem(value, max) {
        v.add(field, p);
    }
}

pub fn optional_text(v: &mut Violations, field: &str, value: &str, max: usize) {
    if let Some(p) = optional_text_problem(value, max) {
        v.add(field, p);
    }
}

pub fn code(v: &mut Violations, field: &str, value: &str) {
    if !is_code(value) {
        v.add(field, "must be 1 to 64 characters of A-Z a-z 0-9 . _ -");
    }
}

pub fn credit_code(v: &mut Violations, field: &str, value: &str) {
    if let Err(p) = CreditCode::parse(value) {
        v.add(field, format!("credit code {p}"));
    }
}

pub fn phone(v: &mut Violations, field: &str, value: &str) {
    if !is_phone(value) {
        v.add(field, "is not a phone number");
    }
}

pub fn email(v: &mut Violations, field: &str, value: &str) {
    if !value.is_empty() && !is_email(value) {
        v.add(field, "is not an e-mail address");
    }
}

pub fn id_number(v: &mut Violations, field: &str, value: &str) {
    // The message never repeats the number: it is personal data.
    if let Err(p) = resident_id::validate(value) {
        v.add(field, format!("resident ID number {p}"));
    }
}

pub fn date(
    v: &mut Violations,
    field: &str,
    d: Option<&govit_proto::google::r#type::Date>,
) -> Option<chrono::NaiveDate> {
    let Some(d) = d else {
        v.add(field, "is required");
        return None;
    };
    let parsed = date_from_proto(d).filter(|d| (1990..=2100).contains(&chrono::Datelike::year(d)));
    if parsed.is_none() {
        v.add(field, "is not a calendar date between 1990 and 2100");
    }
    parsed
}

pub fn source(v: &mut Violations, field: &str, raw: i32) -> Option<pb::ExpertSource> {
    match pb::ExpertSource::try_from(raw) {
        Ok(pb::ExpertSource::Unspecified) => {
            v.add(field, "must be specified");
            None
        }
        Ok(s) => Some(s),
        Err(_) => {
            v.add(field, format!("{raw} is not a known value"));
            None
        }
    }
}

pub fn categories(v: &mut Violations, field: &str, categories: &[String]) {
    if categories.is_empty() {
        v.add(field, "must name at least one category");
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, c) in categories.iter().enumerate() {
        code(v, &format!("{field}[{i}]"), c);
        if !seen.insert(c) {
            v.add(format!("{field}[{i}]"), "appears twice");
        }
    }
}

pub fn periods(
    v: &mut Violations,
    field: &str,
    periods: &[pb::UnavailablePeriod],
) -> Vec<PeriodRec> {
    let mut out = Vec::new();
    for (i, p) in periods.iter().enumerate() {
        let start = date(
            v,
            &format!("{field}[{i}].start_date"),
            p.start_date.as_ref(),
        );
        let end = date(v, &format!("{field}[{i}].end_date"), p.end_date.as_ref());
        optional_text(v, &format!("{field}[{i}].reason"), &p.reason, 500);
        if let (Some(s), Some(e)) = (start, end) {
            if s > e {
                v.add(
                    format!("{field}[{i}].end_date"),
                    "must not be before start_date",
                );
            }
            out.push(PeriodRec {
                start: s.to_string(),
                end: e.to_string(),
                reason: p.reason.clone(),
            });
        }
    }
    out
}

pub fn conflicts(
    v: &mut Violations,
    field: &str,
    conflicts: &[pb::DeclaredConflict],
) -> Vec<ConflictRec> {
    for (i, c) in conflicts.iter().enumerate() {
        credit_code(v, &format!("{field}[{i}].credit_code"), &c.credit_code);
        optional_text(v, &format!("{field}[{i}].reason"), &c.reason, 500);
    }
    conflicts
        .iter()
        .map(|c| ConflictRec {
            credit_code: c.credit_code.trim().to_owned(),
            reason: c.reason.clone(),
        })
        .collect()
}

/// The id of the resource name `name` (`{collection}/{id}`), or a violation of `field`.
pub fn parse_name(field: &str, name: &str, collection: &str) -> ServiceResult<String> {
    match name
        .strip_prefix(collection)
        .and_then(|r| r.strip_prefix('/'))
    {
        Some(id) if is_code(id) => Ok(id.to_owned()),
        _ => Err(ServiceError::field(
            field,
            format!("must be {collection}/{{id}}"),
        )),
    }
}

/// The version an etag names; 0 with a violation when it names none.
pub fn etag(v: &mut Violations, field: &str, etag: &str) -> i64 {
    match etag.parse::<i64>() {
        Ok(e) => e,
        Err(_) => {
            v.add(
                field,
                if etag.is_empty() {
                    "is required: send the etag as read"
                } else {
                    "is not an etag of this service"
                },
            );
            0
        }
    }
}

/// The fields an update mask names; a violation when it names none.
pub fn mask_paths(v: &mut Violations, mask: Option<prost_types::FieldMask>) -> Vec<String> {
    let paths = mask.map(|m| m.paths).unwrap_or_default();
    if paths.is_empty() {
        v.add("update_mask", "must name the fields to change");
    }
    paths
}

/// The violation of a mask path no field answers to.
pub fn not_updatable(v: &mut Violations, path: &str) {
    v.add("update_mask", format!("{path:?} is not an updatable field"));
}
