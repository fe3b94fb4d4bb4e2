//! A crate that has the runtime only as `mt` (`mt = { package = "mercure-track" }`): the
//! derives and the attribute follow `crate = ::mt`. Exercised by `tests/tests/macros.rs`.

use mt::prelude::*;
use mt::{FromContext, TrackingSession};

/// A model.
#[derive(Debug, Clone, Tracked)]
#[tracked(table = "gadgets", crate = ::mt)]
pub struct Gadget {
    /// Key.
    #[tracked(primary_key)]
    pub id: i64,
    /// Its parent: a tree.
    #[tracked(belongs_to = Gadget)]
    pub parent_id: Option<i64>,
    /// Name.
    pub name: String,
}

/// A triggered event.
#[derive(Debug, Clone, PartialEq, MercureEvent)]
#[mercure(type = "gadget_update", topic = "gadgets/{gadget_id}", crate = ::mt)]
#[trigger(Gadget::name)]
pub struct GadgetUpdate {
    /// The gadget.
    #[context(Gadget::id)]
    pub gadget_id: i64,
}

/// A batch event with the built-in rule.
#[derive(Debug, Clone, PartialEq, MercureEvent)]
#[mercure(type = "gadget_list", topic = "gadgets", collect(GadgetUpdate), crate = ::mt)]
pub struct GadgetList {
    /// The changed gadgets.
    pub gadget_ids: Vec<i64>,
}

/// A session that records which events it tracks.
#[derive(Debug, Default)]
pub struct Recording {
    /// The tracked type strings.
    pub tracked: Vec<&'static str>,
}

/// A context source that has no value.
#[derive(Debug)]
pub struct Nothing;

impl<T> mt::ContextSource<T> for Nothing {
    fn context_value(&mut self, _: usize, name: &'static str) -> Result<T, mt::ContextError> {
        Err(mt::ContextError::Missing { field: name })
    }
}

impl TrackingSession for Recording {
    type ContextSource = Nothing;
    fn track_event<E: mt::MercureEvent + FromContext<Nothing>>(&mut self) {
        self.tracked.push(E::TYPE);
    }
}

/// An auto-tracked service.
#[mt::mercure_autotrack(GadgetUpdate, crate = ::mt)]
#[derive(Debug)]
pub struct GadgetService {
    /// Its session.
    pub session: Recording,
}

#[mt::mercure_autotrack(crate = ::mt)]
impl GadgetService {
    /// A service whose session tracks `GadgetUpdate`.
    pub fn new() -> Self {
        Self {
            session: Recording::default(),
        }
    }
}

/// Deliberately shares its type string with `mercure_track_tests::domain::OrderUpdate`: two
/// crates cannot see each other's events at compile time, so `mt::registry::validate()` of a
/// program linking both reports it (tested in `tests/tests/macros.rs`).
#[derive(Debug, Clone, PartialEq, MercureEvent)]
#[mercure(type = "order_update", topic = "legacy/orders", crate = ::mt)]
pub struct LegacyOrderUpdate {
    /// The order.
    pub order_id: String,
}
