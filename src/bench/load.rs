//! Many concurrent calls over several connections, counted and timed.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::task::JoinSet;
use tonic::{Status, transport::Channel};

/// How a measured phase sends its calls.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub connections: usize,
    pub streams: usize,
    pub duration: Duration,
}

/// What one phase did.
#[derive(Debug, Default)]
pub struct Tally {
    pub calls: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub elapsed: Duration,
    latencies_us: Vec<u32>,
}

impl Tally {
    pub fn rate(&self) -> f64 {
        self.calls as f64 / self.elapsed.as_secs_f64()
    }

    /// Of the latencies, which `phase` leaves sorted.
    fn percentile_ms(&self, p: usize) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let at = (self.latencies_us.len() * p / 100).min(self.latencies_us.len() - 1);
        f64::from(self.latencies_us[at]) / 1000.0
    }

    fn merge(&mut self, other: Tally) {
        self.calls += other.calls;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.latencies_us.extend(other.latencies_us);
    }
}

impl Load {
    /// Sends `call(channel, i)` from every stream for one second of warm-up and then for the
    /// phase's duration; `i` counts the calls across all streams. Any failed call fails the
    /// measurement: a rate of refusals is not a rate of calls.
    pub async fn measure<F, Fut>(&self, channels: &[Channel], call: F) -> anyhow::Result<Tally>
    where
        F: Fn(Channel, u64) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Status>> + Send,
    {
        let counter = Arc::new(AtomicU64::new(0));
        self.phase(channels, Duration::from_secs(1), &counter, call.clone())
            .await?;
        self.phase(channels, self.duration, &counter, call).await
    }

    async fn phase<F, Fut>(
        &self,
        channels: &[Channel],
        duration: Duration,
        counter: &Arc<AtomicU64>,
        call: F,
    ) -> anyhow::Result<Tally>
    where
        F: Fn(Channel, u64) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Status>> + Send,
    {
        let started = Instant::now();
        let deadline = started + duration;
        let mut tasks = JoinSet::new();
        for channel in channels {
            for _ in 0..self.streams {
                let (channel, call, counter) = (channel.clone(), call.clone(), counter.clone());
                tasks.spawn(async move {
                    let mut tally = Tally::default();
                    while Instant::now() < deadline {
                        let i = counter.fetch_add(1, Ordering::Relaxed);
                        let sent = Instant::now();
                        match call(channel.clone(), i).await {
                            Ok(()) => {
                                tally.calls += 1;
                                let us = sent.elapsed().as_micros();
                                tally
                                    .latencies_us
                                    .push(u32::try_from(us).unwrap_or(u32::MAX));
                            }
                            Err(status) => {
                                tally.errors += 1;
                                tally.first_error.get_or_insert_with(|| {
                                    format!("{:?}: {}", status.code(), status.message())
                                });
                            }
                        }
                    }
                    tally
                });
            }
        }
        let mut total = Tally::default();
        while let Some(done) = tasks.join_next().await {
            total.merge(done?);
        }
        total.elapsed = started.elapsed();
        total.latencies_us.sort_unstable();
        if let Some(error) = &total.first_error {
            anyhow::bail!("{} of the calls failed; the first: {error}", total.errors);
        }
        Ok(total)
    }

    /// Makes `n` calls from every stream at once and returns their answers, in call order.
    pub async fn count<T, F, Fut>(
        &self,
        channels: &[Channel],
        n: usize,
        call: F,
    ) -> anyhow::Result<Vec<T>>
    where
        T: Send + 'static,
        F: Fn(Channel, u64) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<T, Status>> + Send,
    {
        let counter = Arc::new(AtomicU64::new(0));
        let mut tasks = JoinSet::new();
        for channel in channels {
            for _ in 0..self.streams {
                let (channel, call, counter) = (channel.clone(), call.clone(), counter.clone());
                tasks.spawn(async move {
                    let mut answers = Vec::new();
                    loop {
                        let i = counter.fetch_add(1, Ordering::Relaxed);
                        if i >= n as u64 {
                            return Ok::<_, Status>(answers);
                        }
                        answers.push((i, call(channel.clone(), i).await?));
                    }
                });
            }
        }
        let mut all = Vec::with_capacity(n);
        while let Some(done) = tasks.join_next().await {
            all.extend(done??);
        }
        all.sort_by_key(|(i, _)| *i);
        Ok(all.into_iter().map(|(_, answer)| answer).collect())
    }
}

/// Prints the phases as a table, each with its rate as a share of the floor's, if one of
/// them is the floor.
pub fn report(rows: &[(&str, &Tally)], floor: Option<usize>) {
    let floor_rate = floor.map(|f| rows[f].1.rate());
    match floor {
        Some(f) => println!("| call | calls/s | p50 ms | p99 ms | of {} |", rows[f].0),
        None => println!("| call | calls/s | p50 ms | p99 ms | |"),
    }
    println!("|---|---:|---:|---:|---:|");
    for (label, tally) in rows {
        let share = floor_rate
            .map(|f| format!("{:.0}%", 100.0 * tally.rate() / f))
            .unwrap_or_default();
        println!(
            "| {label} | {:.0} | {:.2} | {:.2} | {share} |",
            tally.rate(),
            tally.percentile_ms(50),
            tally.percentile_ms(99),
        );
    }
}
