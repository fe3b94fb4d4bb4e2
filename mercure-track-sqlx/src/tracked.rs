//! Which events a session tracks, and how it builds each from a resolved context.

use std::any::TypeId;

use mercure_track::{
    AnyEvent, ContextError, EventDescriptor, FromContext, MercureEvent, TriggerKey, TriggerSpec,
    registry,
};

use mercure_track::registry::ProgramKeyMap;

use crate::dialect::Dialect;
use crate::resolve::ContextRow;

/// Builds a tracked event from a context row: `E::from_context`, monomorphized when tracking
/// starts, so the commit needs no knowledge of event types.
pub(crate) type BuildEvent<DB> = fn(&mut ContextRow<DB>) -> Result<Box<dyn AnyEvent>, ContextError>;

pub(crate) struct TrackedEvent<DB: Dialect> {
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

pub(crate) struct TrackedEvents<DB: Dialect> {
    events: ProgramKeyMap<TypeId, TrackedEvent<DB>>,
}

impl<DB: Dialect> Default for TrackedEvents<DB> {
    fn default() -> Self {
        Self {
            events: ProgramKeyMap::default(),
        }
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
        self.events
            .entry(TypeId::of::<E>())
            .or_insert_with(|| TrackedEvent {
                descriptor: E::descriptor(),
                build: build::<DB, E>,
                triggers: registry::triggers_of(E::descriptor()),
            });
    }

    /// The tracked events a change of `trigger` fires, through the registry's index.
    pub(crate) fn triggered_by(
        &self,
        trigger: TriggerKey,
    ) -> impl Iterator<Item = &TrackedEvent<DB>> {
        registry::events_triggered_by(trigger)
            .iter()
            .filter_map(|descriptor| self.events.get(&(descriptor.type_id)()))
    }

    /// Whether a change of `trigger` fires any tracked event.
    pub(crate) fn fires(&self, trigger: TriggerKey) -> bool {
        !self.events.is_empty() && self.triggered_by(trigger).next().is_some()
    }

    /// The tracked events' descriptors.
    pub(crate) fn descriptors(&self) -> impl Iterator<Item = &'static EventDescriptor> + '_ {
        self.events.values().map(|event| event.descriptor)
    }
}
