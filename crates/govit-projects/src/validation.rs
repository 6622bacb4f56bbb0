//! Request checks that need no database: each adds field violations named as the client sent
//! them (`project.contacts[1].phone`).

use chrono::NaiveDate;
use govit_platform::{
    ServiceError, ServiceResult, Violations,
    time::date_from_proto,
    uscc::CreditCode,
    validate::{is_email, is_phone, optional_text_problem, text_problem},
};
use govit_proto::{google::r#type::Date, projects::v1 as pb};

use govit_proto::StoredEnum;

use crate::model::{ContactRec, IndicatorRec, PanelRec, ProjectCode};

/// The largest investment or amount accepted: 100 billion yuan, in fen. Anything above is a
/// typing error, not a city IT project.
pub const MAX_AMOUNT_FEN: i64 = 10_000_000_000_000;
pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_TEXT_CHARS: usize = 20_000;
pub const MAX_REASON_CHARS: usize = 2_000;

pub fn text(v: &mut Violations, field: &str, value: &str, max: usize) {
    if let Some(problem) = text_problem(value, max) {
        v.add(field, problem);
    }
}

/// A day something happened on a project: not before the project existed, not in the future.
pub fn within_life(field: &str, project_created: &str, day: NaiveDate) -> ServiceResult<()> {
    let created = govit_platform::time::from_stored(project_created)
        .map_err(ServiceError::Internal)?
        .with_timezone(&govit_platform::time::beijing())
        .date_naive();
    if day < created {
        return Err(ServiceError::field(
            field,
            format!("{day} is before the project was created ({created})"),
        ));
    }
    not_in_future(field, day)
}

/// A day something is recorded to have happened on: not after today in Beijing.
pub fn not_in_future(field: &str, day: NaiveDate) -> ServiceResult<()> {
    let today = govit_platform::time::beijing_today();
    if day > today {
        return Err(ServiceError::field(
            field,
            format!("{day} is in the future (today is {today} in Beijing)"),
        ));
    }
    Ok(())
}

/// Standards a contract binds one party to: at least one, each a code and title.
pub fn standards(v: &mut Violations, field: &str, standards: &[String]) {
    if standards.is_empty() {
        v.add(
            field,
            "must name at least one standard, e.g. GB/T 22239-2019",
        );
    } else if standards.len() > MAX_STANDARDS {
        v.add(
            field,
            format!("must name at most {MAX_STANDARDS} standards"),
        );
    }
    for (i, standard) in standards.iter().enumerate().take(MAX_STANDARDS) {
        text(v, &format!("{field}[{i}]"), standard.trim(), MAX_NAME_CHARS);
    }
}

const MAX_STANDARDS: usize = 50;
const MAX_INDICATORS: usize = 50;

/// The indicators a feasibility study promises: each complete, names unique.
pub fn indicators(
    v: &mut Violations,
    field: &str,
    indicators: &[pb::PromisedIndicator],
) -> Vec<IndicatorRec> {
    if indicators.len() > MAX_INDICATORS {
        v.add(
            field,
            format!("must promise at most {MAX_INDICATORS} indicators"),
        );
    }
    let mut names = std::collections::HashSet::new();
    let mut kept = Vec::new();
    for (i, indicator) in indicators.iter().enumerate().take(MAX_INDICATORS) {
        let at = |part: &str| format!("{field}[{i}].{part}");
        let name = indicator.name.trim();
        text(v, &at("name"), name, MAX_NAME_CHARS);
        if !name.is_empty() && !names.insert(name.to_owned()) {
            v.add(at("name"), format!("{name:?} is promised twice"));
        }
        let unit = indicator.unit.trim();
        text(v, &at("unit"), unit, MAX_UNIT_CHARS);
        if !indicator.target.is_finite() {
            v.add(at("target"), "must be a finite number");
        }
        let dimension =
            enum_value::<pb::EvaluationDimension>(v, &at("dimension"), indicator.dimension, false);
        let direction =
            enum_value::<pb::IndicatorDirection>(v, &at("direction"), indicator.direction, false);
        if let (Some(dimension), Some(direction)) = (dimension, direction) {
            kept.push(IndicatorRec {
                dimension: dimension.as_stored().to_owned(),
                name: name.to_owned(),
                unit: unit.to_owned(),
                target: indicator.target,
                direction: direction.as_stored().to_owned(),
            });
        }
    }
    kept
}

const MAX_UNIT_CHARS: usize = 50;

pub fn optional_text(v: &mut Violations, field: &str, value: &str, max: usize) {
    if let Some(problem) = optional_text_problem(value, max) {
        v.add(field, problem);
    }
}

pub fn contacts(v: &mut Violations, field: &str, contacts: &[pb::Contact]) -> Vec<ContactRec> {
    if contacts.len() > 20 {
        v.add(field, "at most 20 contacts");
    }
    for (i, c) in contacts.iter().enumerate() {
        text(v, &format!("{field}[{i}].name"), &c.name, 100);
        optional_text(v, &format!("{field}[{i}].title"), &c.title, 100);
        if !c.phone.trim().is_empty() && !is_phone(c.phone.trim()) {
            v.add(format!("{field}[{i}].phone"), "is not a phone number");
        }
        if !c.email.trim().is_empty() && !is_email(c.email.trim()) {
            v.add(format!("{field}[{i}].email"), "is not an e-mail address");
        }
        if c.phone.trim().is_empty() && c.email.trim().is_empty() {
            v.add(
                format!("{field}[{i}]"),
                "needs a phone number or an e-mail address",
            );
        }
    }
    contacts.iter().map(ContactRec::from).collect()
}

/// `organizations/{credit_code}` with a valid code.
pub fn org_name(v: &mut Violations, field: &str, name: &str) -> Option<CreditCode> {
    let Some(code) = name.strip_prefix("organizations/") else {
        v.add(field, "must be organizations/{credit_code}");
        return None;
    };
    match CreditCode::parse(code) {
        Ok(code) => Some(code),
        Err(problem) => {
            v.add(field, format!("credit code {problem}"));
            None
        }
    }
}

pub fn parse_org_name(field: &str, name: &str) -> ServiceResult<CreditCode> {
    let mut v = Violations::new();
    let code = org_name(&mut v, field, name);
    v.finish()?;
    code.ok_or_else(|| ServiceError::field(field, "is not an organisation name"))
}

pub fn parse_project_name(field: &str, name: &str) -> ServiceResult<ProjectCode> {
    name.strip_prefix("projects/")
        .and_then(ProjectCode::parse)
        .ok_or_else(|| {
            ServiceError::field(field, "must be projects/{code}, e.g. projects/2026-0007")
        })
}

pub fn date(v: &mut Violations, field: &str, d: Option<&Date>) -> Option<chrono::NaiveDate> {
    let d = d?;
    let parsed = date_from_proto(d).filter(|d| (2000..=2100).contains(&chrono::Datelike::year(d)));
    if parsed.is_none() {
        v.add(field, "is not a calendar date between 2000 and 2100");
    }
    parsed
}

pub fn amount(v: &mut Violations, field: &str, fen: i64, allow_zero: bool) {
    if fen < 0 || (!allow_zero && fen == 0) {
        v.add(
            field,
            if allow_zero {
                "must not be negative"
            } else {
                "must be positive"
            },
        );
    } else if fen > MAX_AMOUNT_FEN {
        v.add(
            field,
            format!("must be at most {MAX_AMOUNT_FEN} fen (100 billion yuan)"),
        );
    }
}

/// A known enum value; `allow_unspecified` for fields that may stay open in a draft.
pub fn enum_value<E: TryFrom<i32>>(
    v: &mut Violations,
    field: &str,
    raw: i32,
    allow_unspecified: bool,
) -> Option<E> {
    match E::try_from(raw) {
        Ok(e) if raw != 0 || allow_unspecified => Some(e),
        Ok(_) => {
            v.add(field, "must be specified");
            None
        }
        Err(_) => {
            v.add(field, format!("{raw} is not a known value"));
            None
        }
    }
}

pub fn panel(v: &mut Violations, field: &str, panel: &[pb::PanelRequirement]) -> Vec<PanelRec> {
    v.panel_shape(field, panel);
    // Kept in office's order, so that a violation the registry reports by index names the
    // entry office wrote.
    panel
        .iter()
        .map(|p| PanelRec {
            category: p.category.clone(),
            count: p.count,
            alternates: p.alternates,
        })
        .collect()
}

pub fn reasons(v: &mut Violations, field: &str, reasons: &[String]) {
    if reasons.is_empty() {
        v.add(field, "must give at least one reason");
    }
    if reasons.len() > 50 {
        v.add(field, "at most 50 reasons");
    }
    for (i, r) in reasons.iter().enumerate() {
        text(v, &format!("{field}[{i}]"), r, MAX_REASON_CHARS);
    }
}

pub fn etag(field: &str, etag: &str) -> ServiceResult<i64> {
    if etag.is_empty() {
        return Err(ServiceError::field(
            field,
            "is required: send the etag of the project as read",
        ));
    }
    etag.parse::<i64>()
        .map_err(|_| ServiceError::field(field, "is not an etag of this service"))
}

/// `projects/{code}/{collection}/{id}` → (code, id).
pub fn parse_child_name(
    field: &str,
    name: &str,
    collection: &str,
) -> ServiceResult<(ProjectCode, String)> {
    let bad = || {
        ServiceError::field(
            field,
            format!("must be projects/{{code}}/{collection}/{{id}}"),
        )
    };
    let rest = name.strip_prefix("projects/").ok_or_else(bad)?;
    let (code, tail) = rest.split_once('/').ok_or_else(bad)?;
    let id = tail
        .strip_prefix(collection)
        .and_then(|t| t.strip_prefix('/'))
        .ok_or_else(bad)?;
    let code = ProjectCode::parse(code).ok_or_else(bad)?;
    if id.is_empty() || id.len() > 64 || id.contains('/') {
        return Err(bad());
    }
    Ok((code, id.to_owned()))
}

/// The id of a document of project `project` (`projects/{code}`) named `document`, if it is
/// one: `projects/{code}/documents/{id}` of the same project.
pub fn document_of(project: &str, document: &str) -> Option<String> {
    let (code, id) = parse_child_name("document", document, "documents").ok()?;
    (project.strip_prefix("projects/") == Some(code.as_str())).then_some(id)
}

/// Like [`etag`], adding its problem to `v`.
pub fn etag_into(v: &mut Violations, field: &str, value: &str) -> Option<i64> {
    absorb(v, etag(field, value))
}

/// Like [`parse_project_name`], adding its problem to `v`.
pub fn project_name_into(v: &mut Violations, field: &str, name: &str) -> Option<ProjectCode> {
    absorb(v, parse_project_name(field, name))
}

fn absorb<T>(v: &mut Violations, result: ServiceResult<T>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(ServiceError::InvalidArgument(violations)) => {
            for x in violations {
                v.add(x.field, x.description);
            }
            None
        }
        Err(_) => None,
    }
}

/// A review's stage and decision, each a known value.
pub fn stage_decision(
    v: &mut Violations,
    stage: i32,
    decision: i32,
) -> (Option<pb::ReviewStage>, Option<pb::ReviewDecision>) {
    let stage = enum_value::<pb::ReviewStage>(v, "stage", stage, false);
    let decision = enum_value::<pb::ReviewDecision>(v, "decision", decision, false);
    (stage, decision)
}

/// The decision must fit the stage.
pub fn decision_fits(
    v: &mut Violations,
    stage: Option<pb::ReviewStage>,
    decision: Option<pb::ReviewDecision>,
) {
    match (stage, decision) {
        (Some(stage), Some(decision)) if !stage.admits(decision) => v.add(
            "decision",
            format!(
                "{} does not apply to {}",
                decision.as_str_name(),
                stage.as_str_name()
            ),
        ),
        _ => {}
    }
}
