//! The audit trail of reads: who saw personal data or confidential material (an expert's
//! unmasked record, a document, a panel before its meeting), kept in each service's own
//! database for inspectors. A read that cannot be recorded is refused, so nothing is seen
//! unrecorded.

use govit_proto::common::v1 as cpb;
use sqlx::Row;

use crate::{
    Caller, Db, Role, ServiceError, ServiceResult,
    paging::Page,
    time::{now, stored_to_timestamp, to_stored},
};

/// Records that `caller` read `resource`.
pub async fn record(db: &Db, caller: &Caller, kind: &str, resource: &str) -> ServiceResult<()> {
    record_all(db, caller, kind, &[resource.to_owned()]).await
}

/// Records that `caller` read each of `resources` (a page of a list): one transaction, so a
/// page costs one commit, not one per row.
pub async fn record_all(
    db: &Db,
    caller: &Caller,
    kind: &str,
    resources: &[String],
) -> ServiceResult<()> {
    if resources.is_empty() {
        return Ok(());
    }
    let at = to_stored(now());
    let mut tx = db.begin_side_write().await?;
    for resource in resources {
        sqlx::query("INSERT INTO read_events (id, read_time, subject, role, kind, resource) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(uuid::Uuid::now_v7().simple().to_string())
            .bind(at.clone())
            .bind(caller.subject.clone())
            .bind(caller.role.as_str())
            .bind(kind.to_owned())
            .bind(resource.clone())
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// A page of reads, oldest first (inspectors only).
pub async fn list(
    db: &Db,
    caller: &Caller,
    req: &cpb::ListReadEventsRequest,
) -> ServiceResult<cpb::ListReadEventsResponse> {
    caller.require(&[Role::Inspector])?;
    let page = Page::parse(
        req.page_size,
        &req.page_token,
        &format!("reads {:?} {:?}", req.resource, req.subject),
    )?;
    let rows = sqlx::query(
        "SELECT id, read_time, subject, role, kind, resource FROM read_events \
         WHERE ($1 = '' OR resource = $1) AND ($2 = '' OR subject = $2) AND id > $3 ORDER BY id LIMIT $4",
    )
    .bind(req.resource.clone())
    .bind(req.subject.clone())
    .bind(page.after.clone().unwrap_or_default())
    .bind(page.fetch_limit())
    .fetch_all(&db.pool)
    .await?;
    let mut events = rows
        .iter()
        .map(read_event)
        .collect::<anyhow::Result<Vec<_>>>()
        .map_err(ServiceError::Internal)?;
    let next_page_token = page.finish(&mut events, |e| {
        e.name.trim_start_matches("readEvents/").to_owned()
    });
    Ok(cpb::ListReadEventsResponse {
        events,
        next_page_token,
    })
}

/// One recorded read (inspector).
pub async fn get(db: &Db, caller: &Caller, name: &str) -> ServiceResult<cpb::ReadEvent> {
    caller.require(&[Role::Inspector])?;
    let id = name
        .strip_prefix("readEvents/")
        .filter(|id| !id.is_empty() && id.len() <= 64 && !id.contains('/'))
        .ok_or_else(|| ServiceError::field("name", "must be readEvents/{id}"))?;
    let row = sqlx::query(
        "SELECT id, read_time, subject, role, kind, resource FROM read_events WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&db.pool)
    .await?
    .ok_or_else(|| ServiceError::not_found("read event", name))?;
    read_event(&row).map_err(ServiceError::Internal)
}

fn read_event(r: &sqlx::any::AnyRow) -> anyhow::Result<cpb::ReadEvent> {
    let id: String = r.try_get(0)?;
    Ok(cpb::ReadEvent {
        name: format!("readEvents/{id}"),
        read_time: Some(stored_to_timestamp(&r.try_get::<String, _>(1)?)?),
        subject: r.try_get(2)?,
        role: r.try_get(3)?,
        kind: r.try_get(4)?,
        resource: r.try_get(5)?,
    })
}
