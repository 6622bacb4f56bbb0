//! Importing a roster: every row checked by the same rules as CreateExpert, every problem
//! reported by line and column, and then all rows written in one transaction or none.

use std::collections::{BTreeMap, BTreeSet};

use govit_platform::{
    ServiceError, ServiceResult, Violations,
    time::{now, to_stored},
};
use govit_proto::experts::v1::{self as pb, ExpertStatus};
use tonic::Streaming;

use crate::{
    ExpertsService,
    categories::category_violations,
    experts::{EXPERT_FIELDS, ExpertPatch, new_expert_draft},
    model::{CategoryRow, ExpertFull},
    roster::{self, RosterRow},
    store::Store,
    translog, validation as check,
};

/// The largest roster `StreamImportExperts` takes, whole (about a million rows of CSV).
pub const MAX_STREAMED_ROSTER_BYTES: usize = 128 * 1024 * 1024;

/// Reads a streamed import into the one request it stands for, so that both import calls share
/// every rule, the request id included: the request first, then the rest of its file.
pub(crate) async fn assemble(
    stream: &mut Streaming<pb::StreamImportExpertsRequest>,
) -> ServiceResult<pb::ImportExpertsRequest> {
    use pb::stream_import_experts_request::Part;
    // A broken stream (the client cancelled, a message too large) keeps its own status; a
    // message that does not decode (which tonic reports as INTERNAL) is the client's error.
    let broken = |status: tonic::Status| match status.code() {
        tonic::Code::Internal | tonic::Code::Unknown => {
            ServiceError::field("request", "is not a StreamImportExpertsRequest message")
        }
        _ => ServiceError::Relayed(status),
    };
    let first = stream.message().await.map_err(broken)?;
    let Some(Part::Request(mut request)) = first.and_then(|m| m.part) else {
        return Err(ServiceError::field(
            "request",
            "the first message must carry the request",
        ));
    };
    while let Some(message) = stream.message().await.map_err(broken)? {
        let Some(Part::Chunk(bytes)) = message.part else {
            return Err(ServiceError::field(
                "request",
                "must come in the first message only",
            ));
        };
        if request.content.len() + bytes.len() > MAX_STREAMED_ROSTER_BYTES {
            return Err(ServiceError::field(
                "content",
                format!("exceeds the limit of {MAX_STREAMED_ROSTER_BYTES} bytes"),
            ));
        }
        request.content.extend_from_slice(&bytes);
    }
    Ok(request)
}

/// A roster to import.
pub struct RosterImport {
    format: pb::RosterFormat,
    content: Vec<u8>,
    validate_only: bool,
}

impl TryFrom<pb::ImportExpertsRequest> for RosterImport {
    type Error = ServiceError;

    fn try_from(req: pb::ImportExpertsRequest) -> ServiceResult<Self> {
        Ok(RosterImport {
            // An unknown format is reported by the roster reader, with the other problems.
            format: pb::RosterFormat::try_from(req.format).unwrap_or(pb::RosterFormat::Unspecified),
            content: req.content,
            validate_only: req.validate_only,
        })
    }
}

/// An expert a row describes, and the version the row must find (None for a new expert).
type Imported = (ExpertFull, Option<i64>);

impl ExpertsService {
    /// The one import running now, or a refusal while another runs: a caller is never left
    /// waiting behind an upload that may stall.
    pub(crate) fn import_permit(&self) -> ServiceResult<tokio::sync::SemaphorePermit<'_>> {
        self.imports.try_acquire().map_err(|_| {
            ServiceError::with_reason(
                tonic::Code::Aborted,
                "IMPORT_IN_PROGRESS",
                "another roster import is in progress; send this one again when it has finished",
                &[],
            )
        })
    }

    pub(crate) async fn import_roster(
        &self,
        import: RosterImport,
    ) -> ServiceResult<pb::ImportExpertsResponse> {
        let rows = read_roster(import.format, &import.content)?;
        let experts = self.check_roster(&rows).await?;
        let created = experts
            .iter()
            .filter(|(_, expected)| expected.is_none())
            .count() as i32;
        let updated = experts.len() as i32 - created;
        if !import.validate_only {
            let mut tx = translog::begin(&self.store.db).await?;
            Store::write_experts(&mut tx, &experts, &EXPERT_FIELDS.map(str::to_owned)).await?;
            tx.commit().await?;
            if experts.len() > 1000 {
                // Committed: statistics that cannot be refreshed now are autovacuum's later,
                // never a failed answer to an import that happened.
                if let Err(error) = self.store.refresh_statistics().await {
                    tracing::warn!(%error, "statistics not refreshed after the import");
                }
            }
            tracing::info!(created, updated, "roster imported");
        }
        Ok(pb::ImportExpertsResponse { created, updated })
    }

    /// Every row as the expert it makes, or every problem of every row.
    async fn check_roster(&self, rows: &[RosterRow]) -> ServiceResult<Vec<Imported>> {
        let ids: Vec<String> = rows.iter().map(|r| r.expert.expert_id.clone()).collect();
        let mut existing = self.store.experts_by_ids(&ids).await?;
        let mut codes: Vec<String> = rows
            .iter()
            .flat_map(|r| r.expert.categories.clone())
            .collect();
        codes.sort();
        codes.dedup();
        let known = self.store.categories(&codes).await?;
        let mut all = Violations::new();
        let mut seen = BTreeSet::new();
        let mut experts = Vec::new();
        for row in rows {
            let mut v = Violations::new();
            let expert = check_row(&mut v, row, &mut seen, &mut existing, &known);
            if let Err(ServiceError::InvalidArgument(violations)) = v.finish() {
                for x in violations {
                    let column = column_of(row, &x.field);
                    all.add(
                        x.field.clone(),
                        format!("line {}, {column}: {}", row.line, x.description),
                    );
                }
            }
            experts.push(expert);
        }
        all.finish()?;
        Ok(experts)
    }
}

/// Reads the file; its structural problems become field violations.
fn read_roster(format: pb::RosterFormat, content: &[u8]) -> ServiceResult<Vec<RosterRow>> {
    roster::parse(format, content).map_err(|problems| {
        let mut v = Violations::new();
        for p in problems {
            v.add(p.field, p.description);
        }
        v.finish()
            .err()
            .unwrap_or_else(|| ServiceError::field("content", "is not a roster"))
    })
}

/// Checks one row by the rules of CreateExpert (and that its id is new in the file), and
/// makes it the expert it describes: the existing one updated, or a new one.
fn check_row(
    v: &mut Violations,
    row: &RosterRow,
    seen: &mut BTreeSet<String>,
    existing: &mut BTreeMap<String, ExpertFull>,
    known: &BTreeMap<String, CategoryRow>,
) -> Imported {
    let prefix = format!("rows[{}]", row.line);
    let id = &row.expert.expert_id;
    check::code(v, &format!("{prefix}.expert_id"), id);
    if !seen.insert(id.clone()) {
        v.add(
            format!("{prefix}.expert_id"),
            "appears on an earlier line too",
        );
    }
    let (mut expert, expected) = match existing.remove(id) {
        Some(e) => {
            let version = e.row.version;
            (e, Some(version))
        }
        None => (new_expert_draft(id), None),
    };
    ExpertPatch::read(v, &prefix, &row.expert, &EXPERT_FIELDS).apply_to(v, &prefix, &mut expert);
    match ExpertStatus::try_from(row.expert.status) {
        Ok(s) if s != ExpertStatus::Unspecified => expert.row.status = s,
        _ => v.add(
            format!("{prefix}.status"),
            "must be ACTIVE, SUSPENDED or RETIRED",
        ),
    }
    category_violations(
        known,
        v,
        |i| format!("{prefix}.categories[{i}]"),
        &row.expert.categories,
    );
    expert.row.update_time = to_stored(now());
    (expert, expected)
}

/// The column a violation's field came from: `rows[7].employer.credit_code` → `column C
/// (统一社会信用代码)`.
fn column_of(row: &RosterRow, field: &str) -> String {
    let prefix = format!("rows[{}].", row.line);
    let path = field.strip_prefix(&prefix).unwrap_or(field);
    let key = path.split(['.', '[']).next().unwrap_or(path);
    let key = if key == "employer" && path.contains("name") && !path.contains("credit_code") {
        "employer_name"
    } else if key == "employer" {
        "employer_credit_code"
    } else {
        key
    };
    row.columns
        .get(key)
        .cloned()
        .unwrap_or_else(|| key.to_owned())
}
