//! How a closed set of values is stored: as text, the proto enum's name without its prefix
//! (`UNDER_CONSTRUCTION` for `PROJECT_STATE_UNDER_CONSTRUCTION`), or a service's own enum
//! declared with [`stored_enum!`](crate::stored_enum). Reading a value no variant names is an
//! error, never a default: a corrupt row must not become plausible data. `UNSPECIFIED` is
//! never stored and never read.
//!
//! Row types read such columns with `#[sqlx(try_from = "String")]`; statements bind
//! [`StoredEnum::as_stored`].

use std::fmt;

/// A value of a closed set that rows store as text.
pub trait StoredEnum: Sized + Copy + 'static {
    /// What the value is, for the error a corrupt row raises ("review state").
    const WHAT: &'static str;

    /// The stored text of this value.
    fn as_stored(self) -> &'static str;

    /// The value stored as `text`; an error for anything no variant names.
    fn from_stored(text: &str) -> Result<Self, CorruptValue>;
}

/// A stored value that names no known variant: the row is corrupt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptValue {
    pub what: &'static str,
    pub value: String,
}

impl CorruptValue {
    pub fn new(what: &'static str, value: &str) -> Self {
        // A corrupt value may be anything; bound what an error message carries.
        let value: String = value.chars().take(64).collect();
        Self { what, value }
    }
}

impl fmt::Display for CorruptValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "stored {} {:?} is not a known value",
            self.what, self.value
        )
    }
}

impl std::error::Error for CorruptValue {}

/// Declares a service's own stored enum: the Rust enum, its stored names, and the
/// [`StoredEnum`] and `TryFrom<String>` impls.
///
/// ```ignore
/// govit_proto::stored_enum! {
///     /// Where a disbursement's money came from.
///     pub enum Source("funding source") { Budget = "BUDGET", Grant = "GRANT" }
/// }
/// ```
#[macro_export]
macro_rules! stored_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident ($what:literal) {
            $($(#[$vmeta:meta])* $variant:ident = $stored:literal),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            #[allow(dead_code)]
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];
        }

        impl $crate::stored::StoredEnum for $name {
            const WHAT: &'static str = $what;

            fn as_stored(self) -> &'static str {
                match self {
                    $(Self::$variant => $stored),+
                }
            }

            fn from_stored(text: &str) -> Result<Self, $crate::stored::CorruptValue> {
                match text {
                    $($stored => Ok(Self::$variant),)+
                    other => Err($crate::stored::CorruptValue::new($what, other)),
                }
            }
        }

        impl ::std::convert::TryFrom<String> for $name {
            type Error = $crate::stored::CorruptValue;

            fn try_from(text: String) -> Result<Self, Self::Error> {
                <Self as $crate::stored::StoredEnum>::from_stored(&text)
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(<Self as $crate::stored::StoredEnum>::as_stored(*self))
            }
        }
    };
}

/// Proto enums stored by their short name.
macro_rules! stored_by_short_name {
    ($($ty:ty => $prefix:literal, $what:literal;)+) => {$(
        impl StoredEnum for $ty {
            const WHAT: &'static str = $what;

            fn as_stored(self) -> &'static str {
                let name = self.as_str_name();
                name.strip_prefix($prefix).unwrap_or(name)
            }

            fn from_stored(text: &str) -> Result<Self, CorruptValue> {
                match <$ty>::from_str_name(&format!("{}{}", $prefix, text)) {
                    Some(value) if value as i32 != 0 => Ok(value),
                    _ => Err(CorruptValue::new($what, text)),
                }
            }
        }

        impl TryFrom<String> for $ty {
            type Error = CorruptValue;

            fn try_from(text: String) -> Result<Self, Self::Error> {
                Self::from_stored(&text)
            }
        }
    )+};
}

use crate::common::v1 as common;
use crate::experts::v1 as experts;
use crate::projects::v1 as projects;
use crate::scheduling::v1 as scheduling;

stored_by_short_name! {
    common::ReviewStage => "REVIEW_STAGE_", "review stage";
    common::ReviewDecision => "REVIEW_DECISION_", "review decision";
    common::OutboxMessageState => "OUTBOX_MESSAGE_STATE_", "outbox message state";
    projects::OrganizationKind => "ORGANIZATION_KIND_", "organization kind";
    projects::ProjectState => "PROJECT_STATE_", "project state";
    projects::FundingSource => "FUNDING_SOURCE_", "funding source";
    projects::ReviewOverrideState => "REVIEW_OVERRIDE_STATE_", "review override state";
    projects::EvaluationGrade => "EVALUATION_GRADE_", "evaluation grade";
    projects::DocumentKind => "DOCUMENT_KIND_", "document kind";
    projects::BudgetChangeState => "BUDGET_CHANGE_STATE_", "budget change state";
    projects::ProgressReportState => "PROGRESS_REPORT_STATE_", "progress report state";
    projects::RiskColor => "RISK_COLOR_", "risk color";
    projects::InspectionScope => "INSPECTION_SCOPE_", "inspection scope";
    projects::FindingSeverity => "FINDING_SEVERITY_", "finding severity";
    projects::NoticeKind => "NOTICE_KIND_", "notice kind";
    projects::TenderMethod => "TENDER_METHOD_", "tender method";
    projects::SupervisingBody => "SUPERVISING_BODY_", "supervising body";
    projects::DuplicationVerdict => "DUPLICATION_VERDICT_", "duplication verdict";
    projects::EvaluationDimension => "EVALUATION_DIMENSION_", "evaluation dimension";
    projects::IndicatorDirection => "INDICATOR_DIRECTION_", "indicator direction";
    experts::ExpertSource => "EXPERT_SOURCE_", "expert source";
    experts::ExpertStatus => "EXPERT_STATUS_", "expert status";
    experts::RosterFormat => "ROSTER_FORMAT_", "roster format";
    experts::DrawState => "DRAW_STATE_", "draw state";
    experts::DrawOutcome => "DRAW_OUTCOME_", "draw outcome";
    experts::ReplacementReason => "REPLACEMENT_REASON_", "replacement reason";
    experts::DrawCancelReason => "DRAW_CANCEL_REASON_", "draw cancel reason";
    scheduling::DayKind => "DAY_KIND_", "day kind";
    scheduling::CalendarStatus => "CALENDAR_STATUS_", "calendar status";
    scheduling::ReviewState => "REVIEW_STATE_", "review state";
    scheduling::InvitationState => "INVITATION_STATE_", "invitation state";
    scheduling::MeetingState => "MEETING_STATE_", "meeting state";
    scheduling::Channel => "CHANNEL_", "notification channel";
    scheduling::NotificationStatus => "NOTIFICATION_STATUS_", "notification status";
    projects::BudgetBaselineSource => "BUDGET_BASELINE_SOURCE_", "budget baseline source";
}

/// Review criteria are stored by their short name in lower case ("necessity"), as opinions'
/// scores have always been kept.
impl StoredEnum for scheduling::ReviewCriterion {
    const WHAT: &'static str = "review criterion";

    fn as_stored(self) -> &'static str {
        use scheduling::ReviewCriterion as C;
        match self {
            C::Unspecified => "unspecified",
            C::Necessity => "necessity",
            C::Feasibility => "feasibility",
            C::TechnicalSoundness => "technical_soundness",
            C::BudgetReasonableness => "budget_reasonableness",
            C::Security => "security",
            C::Completeness => "completeness",
            C::Quality => "quality",
            C::Documentation => "documentation",
            C::UseOfFunds => "use_of_funds",
            C::OperatingState => "operating_state",
            C::InvestmentBenefit => "investment_benefit",
        }
    }

    fn from_stored(text: &str) -> Result<Self, CorruptValue> {
        let name = format!("REVIEW_CRITERION_{}", text.to_ascii_uppercase());
        match scheduling::ReviewCriterion::from_str_name(&name) {
            Some(c) if c != scheduling::ReviewCriterion::Unspecified && c.as_stored() == text => {
                Ok(c)
            }
            _ => Err(CorruptValue::new(Self::WHAT, text)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::stored_enum! {
        enum Colour("colour") { Red = "RED", Dark = "DARK_BLUE" }
    }

    #[test]
    fn proto_enums_round_trip_by_short_name() {
        let state = projects::ProjectState::UnderConstruction;
        assert_eq!(state.as_stored(), "UNDER_CONSTRUCTION");
        assert_eq!(
            projects::ProjectState::from_stored("UNDER_CONSTRUCTION"),
            Ok(state)
        );
        for review in [
            scheduling::ReviewState::Stalled,
            scheduling::ReviewState::Concluded,
        ] {
            assert_eq!(
                scheduling::ReviewState::try_from(review.as_stored().to_owned()),
                Ok(review)
            );
        }
    }

    #[test]
    fn unknown_and_unspecified_values_are_corrupt() {
        let err = projects::ProjectState::from_stored("UNSPECIFIED").unwrap_err();
        assert_eq!(err.what, "project state");
        assert!(projects::ProjectState::from_stored("under_construction").is_err());
        assert!(projects::ProjectState::from_stored("PROJECT_STATE_DRAFT").is_err());
        assert!(common::ReviewStage::from_stored("").is_err());
    }

    #[test]
    fn declared_enums_store_their_names() {
        assert_eq!(Colour::Dark.as_stored(), "DARK_BLUE");
        assert_eq!(Colour::from_stored("RED"), Ok(Colour::Red));
        assert_eq!(Colour::ALL.len(), 2);
        let err = Colour::try_from("GREEN".to_owned()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "stored colour \"GREEN\" is not a known value"
        );
    }
}
