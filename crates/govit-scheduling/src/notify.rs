//! Notification records: written in the transaction of the change they announce, streamed to a
//! delivery gateway, and sent again on every new stream until acknowledged.

use govit_platform::{
    Db, ServiceError, ServiceResult, Tx,
    time::{now, stored_to_timestamp, to_stored},
};
use govit_proto::{StoredEnum, scheduling::v1 as pb};
use sqlx::Row;

pub use pb::Channel;

/// Records a notification. The text names reviews, projects and times — never a phone number
/// or ID number; the gateway looks up contact details by the recipient's id.
pub async fn record(
    tx: &mut Tx,
    recipient: &str,
    channel: Channel,
    text: &str,
    review_id: &str,
) -> Result<(), sqlx::Error> {
    let seq: i64 =
        sqlx::query("UPDATE notification_counter SET last = last + 1 WHERE id = 1 RETURNING last")
            .fetch_one(&mut **tx)
            .await?
            .try_get(0)?;
    sqlx::query(
        "INSERT INTO notifications (id, seq, recipient, channel, text, status, review_id, create_time) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(uuid::Uuid::now_v7().simple().to_string())
    .bind(seq)
    .bind(recipient.to_owned())
    .bind(channel.as_stored())
    .bind(text.to_owned())
    .bind(pb::NotificationStatus::Pending.as_stored())
    .bind(review_id.to_owned())
    .bind(to_stored(now()))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub fn to_proto(r: &sqlx::any::AnyRow) -> anyhow::Result<pb::Notification> {
    let channel = pb::Channel::from_stored(&r.try_get::<String, _>("channel")?)?;
    let status = pb::NotificationStatus::from_stored(&r.try_get::<String, _>("status")?)?;
    Ok(pb::Notification {
        name: format!("notifications/{}", r.try_get::<String, _>("id")?),
        recipient: r.try_get("recipient")?,
        channel: channel as i32,
        text: r.try_get("text")?,
        status: status as i32,
        review: format!("reviews/{}", r.try_get::<String, _>("review_id")?),
        create_time: Some(stored_to_timestamp(
            &r.try_get::<String, _>("create_time")?,
        )?),
    })
}

/// A notification the gateway delivered.
#[derive(Debug, Clone)]
pub struct Acknowledgement {
    name: String,
    id: String,
}

impl TryFrom<pb::AcknowledgeNotificationRequest> for Acknowledgement {
    type Error = ServiceError;

    fn try_from(req: pb::AcknowledgeNotificationRequest) -> ServiceResult<Self> {
        let id = req
            .name
            .strip_prefix("notifications/")
            .filter(|i| govit_platform::validate::is_code(i))
            .ok_or_else(|| ServiceError::field("name", "must be notifications/{id}"))?
            .to_owned();
        Ok(Acknowledgement { name: req.name, id })
    }
}

/// Marks the notification delivered: it is not streamed again.
pub async fn acknowledge(db: &Db, ack: Acknowledgement) -> ServiceResult<pb::Notification> {
    sqlx::query("UPDATE notifications SET status = $1 WHERE id = $2")
        .bind(pb::NotificationStatus::Delivered.as_stored())
        .bind(ack.id.clone())
        .execute(&db.pool)
        .await?;
    let row = sqlx::query("SELECT * FROM notifications WHERE id = $1")
        .bind(ack.id)
        .fetch_optional(&db.pool)
        .await?
        .ok_or_else(|| ServiceError::not_found("notification", ack.name))?;
    to_proto(&row).map_err(ServiceError::Internal)
}

/// Up to 100 notifications not yet delivered, after sequence number `after`.
pub async fn pending_after(db: &Db, after: i64) -> Result<Vec<sqlx::any::AnyRow>, sqlx::Error> {
    sqlx::query("SELECT * FROM notifications WHERE status = $1 AND seq > $2 ORDER BY seq LIMIT 100")
        .bind(pb::NotificationStatus::Pending.as_stored())
        .bind(after)
        .fetch_all(&db.pool)
        .await
}
