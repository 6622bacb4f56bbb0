//! Disbursements: payments made from the approved budget. The database keeps the total within
//! the budget in the statement that moves it.

use chrono::NaiveDate;
use govit_platform::{
    Caller, Role, ServiceError, ServiceResult, Tx, Violations,
    error::PreconditionViolation,
    time::{date_from_stored, date_to_proto, date_to_stored, now, stored_to_timestamp, to_stored},
};
use govit_proto::{
    StoredEnum,
    projects::v1::{self as pb, ProjectState as S},
};

use super::{KEEPERS, date_field, internal, new_id};
use crate::{
    ProjectsService,
    model::{Fen, ProjectCode, ProjectRow},
    store::NewEvent,
    validation::{self as check, MAX_REASON_CHARS},
};

/// A payment to record, checked.
pub(crate) struct NewDisbursement {
    code: ProjectCode,
    amount: Fen,
    payment_date: NaiveDate,
    payee: String,
    purpose: String,
    /// The supporting document as named, and its (project code, id).
    supporting_document: String,
    document: Option<(ProjectCode, String)>,
}

impl NewDisbursement {
    pub(crate) const ROLES: &[Role] = &KEEPERS;
}

impl TryFrom<pb::RecordDisbursementRequest> for NewDisbursement {
    type Error = ServiceError;

    fn try_from(req: pb::RecordDisbursementRequest) -> ServiceResult<Self> {
        let d = req.disbursement.unwrap_or_default();
        let mut v = Violations::new();
        check::amount(&mut v, "disbursement.amount_fen", d.amount_fen, false);
        let date = date_field(
            &mut v,
            "disbursement.payment_date",
            d.payment_date.as_ref(),
            true,
        );
        check::text(&mut v, "disbursement.payee", &d.payee, 200);
        check::text(&mut v, "disbursement.purpose", &d.purpose, MAX_REASON_CHARS);
        let document = if d.supporting_document.is_empty() {
            None
        } else {
            let parsed = check::parse_child_name(
                "disbursement.supporting_document",
                &d.supporting_document,
                "documents",
            );
            if parsed.is_err() {
                v.add(
                    "disbursement.supporting_document",
                    "must be projects/{code}/documents/{id}",
                );
            }
            parsed.ok()
        };
        v.finish()?;
        Ok(Self {
            code: check::parse_project_name("parent", &req.parent)?,
            amount: Fen::new(d.amount_fen),
            payment_date: date
                .ok_or_else(|| ServiceError::field("disbursement.payment_date", "is required"))?,
            payee: d.payee.trim().to_owned(),
            purpose: d.purpose,
            supporting_document: d.supporting_document,
            document,
        })
    }
}

/// Refuses a payment the project cannot take: before its contract, while closed or
/// suspended, dated in the future or before the contract.
fn check_payable(project: &ProjectRow, d: &NewDisbursement) -> ServiceResult<()> {
    let state = project.state;
    let Some(contract_date) = project.contract_date.as_deref() else {
        return Err(ServiceError::precondition(
            "STATE_CONFLICT",
            project.name(),
            format!(
                "{} is {}; disbursements are recorded once the contract is signed",
                project.name(),
                state.as_stored()
            ),
        ));
    };
    if matches!(state, S::Closed | S::Suspended) {
        return Err(ServiceError::precondition(
            "STATE_CONFLICT",
            project.name(),
            format!(
                "{} is {}; it takes no disbursements",
                project.name(),
                state.as_stored()
            ),
        ));
    }
    let today = govit_platform::time::beijing_today();
    if d.payment_date > today {
        return Err(ServiceError::field(
            "disbursement.payment_date",
            format!("is after today ({today}): a disbursement records a payment made"),
        ));
    }
    if date_to_stored(d.payment_date).as_str() < contract_date {
        return Err(ServiceError::field(
            "disbursement.payment_date",
            format!("is before the contract date, {contract_date}"),
        ));
    }
    Ok(())
}

/// Adds `amount` to the project's total if it stays within the approved budget. The line
/// is checked by the database in the statement that moves the total, so racing disbursements
/// can never pass it together. False when it would not.
async fn add_to_disbursed(tx: &mut Tx, code: &ProjectCode, amount: Fen) -> ServiceResult<bool> {
    let moved = sqlx::query(
        "UPDATE projects SET disbursed_fen = disbursed_fen + $1 WHERE code = $2 AND approved_budget_fen IS NOT NULL \
         AND disbursed_fen + $1 <= approved_budget_fen RETURNING disbursed_fen",
    )
    .bind(amount)
    .bind(code.to_owned())
    .fetch_optional(&mut **tx)
    .await?;
    Ok(moved.is_some())
}

async fn insert_disbursement(
    tx: &mut Tx,
    id: &str,
    code: &ProjectCode,
    d: &NewDisbursement,
    recorded_by: &str,
    at: &str,
) -> ServiceResult<()> {
    sqlx::query(
        "INSERT INTO disbursements (id, project_code, amount_fen, payment_date, payee, purpose, supporting_document, recorded_by, create_time) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(id.to_owned())
    .bind(code.to_owned())
    .bind(d.amount)
    .bind(date_to_stored(d.payment_date))
    .bind(d.payee.clone())
    .bind(d.purpose.clone())
    .bind(d.supporting_document.clone())
    .bind(recorded_by.to_owned())
    .bind(at.to_owned())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[derive(Debug, sqlx::FromRow)]
struct DisbursementRow {
    id: String,
    amount_fen: Fen,
    payment_date: String,
    payee: String,
    purpose: String,
    supporting_document: String,
    recorded_by: String,
    create_time: String,
}

impl DisbursementRow {
    fn to_proto(&self, code: &ProjectCode) -> ServiceResult<pb::Disbursement> {
        Ok(pb::Disbursement {
            name: format!("projects/{code}/disbursements/{}", self.id),
            amount_fen: self.amount_fen.get(),
            payment_date: Some(date_to_proto(
                date_from_stored(&self.payment_date).map_err(internal)?,
            )),
            payee: self.payee.clone(),
            purpose: self.purpose.clone(),
            supporting_document: self.supporting_document.clone(),
            recorded_by: self.recorded_by.clone(),
            create_time: Some(stored_to_timestamp(&self.create_time).map_err(internal)?),
        })
    }
}

impl ProjectsService {
    /// Records a payment made, within the approved budget.
    pub(crate) async fn add_disbursement(
        &self,
        caller: &Caller,
        d: NewDisbursement,
    ) -> ServiceResult<pb::Disbursement> {
        let project = self.visible_project(caller, &d.code).await?;
        check_payable(&project, &d)?;
        if let Some((c, id)) = &d.document
            && (c != &project.code || self.store.get_document(c, id).await?.is_none())
        {
            return Err(ServiceError::not_found(
                "document",
                d.supporting_document.clone(),
            ));
        }
        let id = new_id();
        let at = to_stored(now());
        let mut tx = self.store.db.begin_write().await?;
        if !add_to_disbursed(&mut tx, &project.code, d.amount).await? {
            drop(tx);
            return Err(self.beyond_budget(&project, d.amount).await);
        }
        insert_disbursement(&mut tx, &id, &project.code, &d, &caller.subject, &at).await?;
        let event = NewEvent {
            action: "RecordDisbursement".into(),
            changed_fields: vec![format!("disbursements/{id}"), "disbursed_fen".into()],
            reason: format!("{} fen to {}", d.amount, d.payee),
            ..NewEvent::default()
        };
        Self::audit(&mut tx, &project.code, caller, event).await?;
        tx.commit().await?;
        Ok(pb::Disbursement {
            name: format!("projects/{}/disbursements/{id}", project.code),
            amount_fen: d.amount.get(),
            payment_date: Some(date_to_proto(d.payment_date)),
            payee: d.payee,
            purpose: d.purpose,
            supporting_document: d.supporting_document,
            recorded_by: caller.subject.clone(),
            create_time: Some(stored_to_timestamp(&at).map_err(internal)?),
        })
    }

    /// The refusal of a payment of `amount` beyond the budget, with the figures as they
    /// are now (another payment or a budget change may have come in between).
    async fn beyond_budget(&self, project: &ProjectRow, amount: Fen) -> ServiceError {
        let now_row = match self.store.get_project(&project.code).await {
            Ok(Some(row)) => row,
            Ok(None) => return ServiceError::not_found("project", project.name()),
            Err(e) => return e,
        };
        let budget = now_row
            .approved_budget_fen
            .unwrap_or(project.approved_budget_fen.unwrap_or_default());
        let disbursed = now_row.disbursed_fen;
        ServiceError::FailedPrecondition {
            message: format!(
                "disbursing {amount} fen would take the total to {} fen, above the approved budget of {budget} fen ({disbursed} fen disbursed so far)",
                disbursed + amount,
            ),
            violations: vec![PreconditionViolation::new(
                "BUDGET_EXCEEDED",
                project.name(),
                format!("approved {budget} fen, disbursed {disbursed} fen, requested {amount} fen"),
            )],
        }
    }

    pub(crate) async fn disbursements_of(
        &self,
        caller: &Caller,
        code: &ProjectCode,
    ) -> ServiceResult<(Vec<pb::Disbursement>, i64)> {
        let project = self.visible_project(caller, code).await?;
        let disbursements = sqlx::query_as::<_, DisbursementRow>(
            "SELECT id, amount_fen, payment_date, payee, purpose, supporting_document, recorded_by, create_time FROM disbursements \
             WHERE project_code = $1 ORDER BY payment_date, create_time, id",
        )
        .bind(code.to_owned())
        .fetch_all(&self.store.db.pool)
        .await?
        .iter()
        .map(|r| r.to_proto(code))
        .collect::<ServiceResult<Vec<_>>>()?;
        Ok((disbursements, project.disbursed_fen.get()))
    }
}
