//! An aggregate's state machine as data. Each aggregate declares its events as an enum whose
//! [`StateMachine`] impl names the states an event may leave and the state it reaches; its
//! store has one transition function that writes the move with the sources in the `WHERE`
//! clause, so a concurrent change loses cleanly instead of being overwritten.

use std::fmt::Debug;

use govit_proto::StoredEnum;

use crate::error::ServiceError;

pub trait StateMachine: Copy + Debug {
    type State: StoredEnum + PartialEq + Debug;

    /// The states the event may start from.
    fn sources(self) -> &'static [Self::State];

    /// The state the event leads to.
    fn target(self) -> Self::State;

    fn allows(self, from: Self::State) -> bool {
        self.sources().contains(&from)
    }

    /// `'A', 'B'` for the `state IN (…)` of the transition's `UPDATE`. Stored names are fixed
    /// identifiers of this program, never input, so they may be spliced into SQL.
    fn sources_sql(self) -> String {
        self.sources()
            .iter()
            .map(|s| format!("'{}'", s.as_stored()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The refusal when `from` is not a source: `FAILED_PRECONDITION` of kind `STATE` on
    /// `subject` (a resource name).
    fn refuse(self, subject: &str, from: Self::State) -> ServiceError {
        ServiceError::precondition(
            "STATE_CONFLICT",
            subject,
            format!(
                "{subject} is {}; {:?} needs one of {}",
                from.as_stored(),
                self,
                self.sources()
                    .iter()
                    .map(|s| s.as_stored())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    }

    /// Checks that the event may leave `from`.
    fn check(self, subject: &str, from: Self::State) -> Result<(), ServiceError> {
        if self.allows(from) {
            Ok(())
        } else {
            Err(self.refuse(subject, from))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use govit_proto::projects::v1::ProgressReportState as S;

    #[derive(Debug, Clone, Copy)]
    enum Event {
        Review,
    }

    impl StateMachine for Event {
        type State = S;
        fn sources(self) -> &'static [S] {
            &[S::Filed]
        }
        fn target(self) -> S {
            S::Reviewed
        }
    }

    #[test]
    fn sources_decide_and_render_for_sql() {
        assert!(Event::Review.allows(S::Filed));
        assert!(!Event::Review.allows(S::Reviewed));
        assert_eq!(Event::Review.sources_sql(), "'FILED'");
        assert!(Event::Review.check("reports/1", S::Reviewed).is_err());
    }
}
