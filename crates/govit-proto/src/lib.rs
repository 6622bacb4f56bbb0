//! The protobuf contract of govit. Only this crate knows where generated code comes from;
//! everything else imports the modules below.

#![forbid(unsafe_code)]

/// The encoded `FileDescriptorSet` of every govit proto, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/govit_descriptor.bin"));

pub mod google {
    pub mod r#type {
        include!(concat!(env!("OUT_DIR"), "/google.r#type.rs"));
    }
}

pub mod govit {
    pub mod common {
        #[allow(clippy::all)]
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/govit.common.v1.rs"));
        }
    }

    pub mod projects {
        // Generated code: its style is prost's and tonic's, not ours (an empty service yields a
        // single-arm match, for one).
        #[allow(clippy::all)]
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/govit.projects.v1.rs"));

            // The shared concepts, where every service's code expects its own types.
            pub use crate::govit::common::v1::{PanelRequirement, ReviewDecision, ReviewStage};
        }
    }

    pub mod experts {
        // Generated code: its style is prost's and tonic's, not ours (an empty service yields a
        // single-arm match, for one).
        #[allow(clippy::all)]
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/govit.experts.v1.rs"));

            // The shared concepts, where every service's code expects its own types.
            pub use crate::govit::common::v1::{PanelRequirement, ReviewDecision, ReviewStage};
        }
    }

    pub mod scheduling {
        // Generated code: its style is prost's and tonic's, not ours (an empty service yields a
        // single-arm match, for one).
        #[allow(clippy::all)]
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/govit.scheduling.v1.rs"));

            // The shared concepts, where every service's code expects its own types.
            pub use crate::govit::common::v1::{PanelRequirement, ReviewDecision, ReviewStage};
        }
    }
}

pub use govit::{common, experts, projects, scheduling};

pub mod review_rules;
pub mod stored;

pub use stored::{CorruptValue, StoredEnum};
