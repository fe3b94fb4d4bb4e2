//! Which events a session tracks, and how it builds each from a resolved context.

use std::any::TypeId;

use mercure_track::{
    AnyEvent, ContextError, EventDescriptor, FromContext, MercureEvent, TriggerKey, TriggerSpec,
    registry,
};

use crate::dialect::Dialect;
use crate::resolve::ContextRow;

/// Builds a tracked event from a context row: `E::from_context`, monomorphized when tracking
/// starts, so the commit needs no knowledge of event types.
pub(crate) type BuildEvent<DB> = fn(&mut ContextRow<DB>) -> Result<Box<dyn AnyEvent>, ContextError>;

pub(crate) struct TrackedEvent<DB: Dialect> {
    /// The event's type.
    type_id: TypeId,
    pub(crate) descriptor: &'static EventDescriptor,
    pub(crate) build: BuildEvent<DB>,
    /// The event's triggers with their context paths, computed once for the program.
    pub(crate) triggers: &'static [TriggerSpec],
}

impl<DB: Dialect> TrackedEvent<DB> {
    /// The trigger spec for rows of `table` (every trigger of one model shares its paths).
    pub(crate) fn spec_for_table(&self, table: &str) -> Option<&TriggerSpec> {
        self.triggers.iter().find(|spec| spec.model.table == table)
    }
}

/// The events one session tracks, in the order tracking started.
///
/// A list searched by type, not a map: a session tracks a few events, and a new session (one
/// per request, per commit) then costs no table and no hashing.
pub(crate) struct TrackedEvents<DB: Dialect> {
    events: Vec<TrackedEvent<DB>>,
}

impl<DB: Dialect> Default for TrackedEvents<DB> {
    fn default() -> Self {
        Self { events: Vec::new() }
    }
}

fn build<DB: Dialect, E>(row: &mut ContextRow<DB>) -> Result<Box<dyn AnyEvent>, ContextError>
where
    E: MercureEvent + FromContext<ContextRow<DB>>,
{
    E::from_context(row).map(|event| Box::new(event) as Box<dyn AnyEvent>)
}

impl<DB: Dialect> TrackedEvents<DB> {
    /// Starts tracking `E`; idempotent.
    pub(crate) fn track<E>(&mut self)
    where
        E: MercureEvent + FromContext<ContextRow<DB>>,
    {
        let type_id = TypeId::of::<E>();
        if self.get(type_id).is_none() {
            self.events.push(TrackedEvent {
                type_id,
                descriptor: E::descriptor(),
                build: build::<DB, E>,
                triggers: registry::triggers_of(E::descriptor()),
            });
        }
    }

    /// The tracked event of type `type_id`, if it is tracked.
    fn get(&self, type_id: TypeId) -> Option<&TrackedEvent<DB>> {
        self.events.iter().find(|event| event.type_id == type_id)
    }

    /// The tracked events a change of `trigger` fires, through the registry's index.
    pub(crate) fn triggered_by(
        &self,
        trigger: TriggerKey,
    ) -> impl Iterator<Item = &TrackedEvent<DB>> {
        registry::events_triggered_by(trigger)
            .iter()
            .filter_map(|descriptor| self.get((descriptor.type_id)()))
    }

    /// Whether a change of `trigger` fires any tracked event.
    pub(crate) fn fires(&self, trigger: TriggerKey) -> bool {
        !self.events.is_empty() && self.triggered_by(trigger).next().is_some()
    }

    /// The tracked events' descriptors.
    pub(crate) fn descriptors(&self) -> impl Iterator<Item = &'static EventDescriptor> + '_ {
        self.events.iter().map(|event| event.descriptor)
    }
}
