//! What an audited route records besides what its handler adds: the
//! action, the RESTful interaction, the resource type and the target until
//! the handler knows it (BALP: Read, Query, Create).

use ehds_fhir::audit_event::{AuditAction, EntityTarget, RestInteraction};
use time::OffsetDateTime;

/// What an audited route records besides what its handler adds.
#[derive(Debug, Clone)]
pub(crate) struct AuditedRoute {
    /// AuditEvent.action.
    pub(crate) action: AuditAction,
    /// AuditEvent.subtype (the RESTful interaction).
    pub(crate) subtype: RestInteraction,
    /// The resource type acted on.
    pub(crate) resource_type: &'static str,
    /// The target until the handler knows it (an empty query or id).
    pub(crate) target: EntityTarget,
}

impl AuditedRoute {
    /// A search of `resource_type`.
    pub(crate) const fn search(resource_type: &'static str) -> Self {
        Self {
            action: AuditAction::Search,
            subtype: RestInteraction::SearchType,
            resource_type,
            target: EntityTarget::Query(String::new()),
        }
    }

    /// A read of one `resource_type`.
    pub(crate) const fn read(resource_type: &'static str) -> Self {
        Self {
            action: AuditAction::Read,
            subtype: RestInteraction::Read,
            resource_type,
            target: EntityTarget::Id(String::new()),
        }
    }

    /// A create of one `resource_type`; `target` as the relay or the
    /// receiving side names it before the resource is read.
    pub(crate) const fn create(resource_type: &'static str, target: EntityTarget) -> Self {
        Self {
            action: AuditAction::Create,
            subtype: RestInteraction::Create,
            resource_type,
            target,
        }
    }
}

/// Now, for `AccessRecord::recorded`.
pub(crate) fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}
