//! The SQL of what review scheduling reports: an expert's service on a review, and office's
//! overrides of review outcomes.

use govit_platform::{
    ServiceResult, Tx,
    db::is_unique_violation,
    time::{now, to_stored},
};

use super::Store;
use crate::reviews::ReviewService;

/// What writing a review service found.
pub enum ServiceRecorded {
    /// Written now, inside the transaction, to be logged and committed.
    New(Tx),
    /// The same record was written before.
    Again,
    /// Another record of the expert on that review exists.
    Different,
}

impl Store {
    /// Records an expert's service on a review inside `tx` and counts it on the expert; a
    /// record seen before changes nothing.
    pub async fn record_review_service(
        &self,
        mut tx: Tx,
        s: &ReviewService,
    ) -> ServiceResult<ServiceRecorded> {
        let inserted = sqlx::query("INSERT INTO expert_reviews (expert_id, review_id, rating, comment, create_time) VALUES ($1, $2, $3, $4, $5)")
            .bind(s.expert.0.clone())
            .bind(s.review_id.clone())
            .bind(i64::from(s.rating))
            .bind(s.comment.clone())
            .bind(to_stored(now()))
            .execute(&mut *tx)
            .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => {
                drop(tx);
                let same = sqlx::query("SELECT 1 FROM expert_reviews WHERE expert_id = $1 AND review_id = $2 AND rating = $3 AND comment = $4")
                    .bind(s.expert.0.clone())
                    .bind(s.review_id.clone())
                    .bind(i64::from(s.rating))
                    .bind(s.comment.clone())
                    .fetch_optional(&self.db.pool)
                    .await?;
                Ok(if same.is_some() {
                    ServiceRecorded::Again
                } else {
                    ServiceRecorded::Different
                })
            }
            Err(e) => Err(e.into()),
            Ok(_) => {
                sqlx::query(
                    "UPDATE experts SET reviews_count = reviews_count + 1, rating_count = rating_count + 1, \
                     rating_sum = rating_sum + $1 WHERE id = $2",
                )
                .bind(i64::from(s.rating))
                .bind(s.expert.0.clone())
                .execute(&mut *tx)
                .await?;
                Ok(ServiceRecorded::New(tx))
            }
        }
    }

    /// The log index an override was recorded at, if it was.
    pub async fn override_index(tx: &mut Tx, override_name: &str) -> ServiceResult<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT log_index FROM review_overrides WHERE override_name = $1")
                .bind(override_name.to_owned())
                .fetch_optional(&mut **tx)
                .await?,
        )
    }

    pub async fn insert_override(
        tx: &mut Tx,
        override_name: &str,
        index: i64,
    ) -> ServiceResult<()> {
        sqlx::query("INSERT INTO review_overrides (override_name, log_index) VALUES ($1, $2)")
            .bind(override_name.to_owned())
            .bind(index)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}
