//! Notification records: written in the transaction of the change they announce, streamed to a
//! delivery gateway, and sent again on every new stream until acknowledged.

use govit_platform::{
    Tx,
    time::{now, stored_to_timestamp, to_stored},
};
use govit_proto::scheduling::v1 as pb;
use sqlx::Row;

#[derive(Debug, Clone, Copy)]
pub enum Channel {
    Sms,
    Email,
    Voice,
}

impl Channel {
    fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "SMS",
            Channel::Email => "EMAIL",
            Channel::Voice => "VOICE",
        }
    }
}

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
         VALUES ($1, $2, $3, $4, $5, 'PENDING', $6, $7)",
    )
    .bind(uuid::Uuid::now_v7().simple().to_string())
    .bind(seq)
    .bind(recipient.to_owned())
    .bind(channel.as_str())
    .bind(text.to_owned())
    .bind(review_id.to_owned())
    .bind(to_stored(now()))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub fn to_proto(r: &sqlx::any::AnyRow) -> anyhow::Result<pb::Notification> {
    let channel: String = r.try_get("channel")?;
    let status: String = r.try_get("status")?;
    Ok(pb::Notification {
        name: format!("notifications/{}", r.try_get::<String, _>("id")?),
        recipient: r.try_get("recipient")?,
        channel: pb::Channel::from_str_name(&format!("CHANNEL_{channel}")).unwrap_or_default()
            as i32,
        text: r.try_get("text")?,
        status: pb::NotificationStatus::from_str_name(&format!("NOTIFICATION_STATUS_{status}"))
            .unwrap_or_default() as i32,
        review: format!("reviews/{}", r.try_get::<String, _>("review_id")?),
        create_time: Some(stored_to_timestamp(
            &r.try_get::<String, _>("create_time")?,
        )?),
    })
}
