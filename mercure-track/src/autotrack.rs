//! Auto-tracked services: `#[mercure_autotrack(EventA, EventB)]`.

use crate::event::{EventDescriptor, FromContext, MercureEvent};
use crate::model::TriggerKey;

/// A service whose session tracks a fixed set of events, declared with
/// `#[mercure_autotrack(...)]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an auto-tracked service",
    label = "`#[mercure_autotrack]` on an `impl` block needs `#[mercure_autotrack(EventA, ...)]` on the struct `{Self}`",
    note = "the struct's attribute lists the events and checks the `session` field; the `impl` block's makes its methods track"
)]
pub trait AutoTracked {
    /// The descriptors of the tracked events.
    fn tracked_events() -> Vec<&'static EventDescriptor>;

    /// Tracks the service's events on its session. Called by the code `#[mercure_autotrack]`
    /// puts in the `impl` block; not public API.
    #[doc(hidden)]
    fn __mercure_autotrack(&mut self);

    /// The trigger columns and row changes of the tracked events, sorted and unique.
    fn trigger_keys() -> Vec<TriggerKey> {
        let mut keys: Vec<TriggerKey> = Self::tracked_events()
            .into_iter()
            .flat_map(|event| (event.triggers)())
            .map(|trigger| trigger.key)
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }
}

/// A session that events can be tracked on: the type a `session` field of an auto-tracked
/// service must have.
#[diagnostic::on_unimplemented(
    message = "the `session` field of a `#[mercure_autotrack]` service must be a tracked session, not `{Self}`",
    label = "expected `TrackedSession<DB>` (from `mercure_track_sqlx`)"
)]
pub trait TrackingSession {
    /// What the session resolves event contexts from.
    type ContextSource;

    /// Starts tracking the triggers of event `E`; tracking the same event twice changes
    /// nothing.
    fn track_event<E>(&mut self)
    where
        E: MercureEvent + FromContext<Self::ContextSource>;
}
